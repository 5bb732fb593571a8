"""HPM-like dual contrastive learning (Huang et al., SIGIR 2023; docs/BASELINES.md 7), approximate.

HPM has no official code; this is the documented re-implementation, to be reported as
"HPM-like". Items get categories from ``category_file`` (lines ``item category``) or, without one,
the stand-in ``cooccurrence_clusters`` (spectral clusters of the training co-occurrence graph,
cached per training data). A second, category-level encoder of the same kind as the item encoder
(its parameters are the method's ``parameters()``) encodes the category sequence of every
instance of the batch; with h_item = the item encoder's last state and h_cat the category
encoder's,
    loss = rec(h) + weight * [ SupCon(h_item; same target) + SupCon(h_cat; same target category)
                               + cross_weight * NTXent(h_item, h_cat) ]     (tau 1, dot products)
Prediction uses the item encoder alone (the trainer and evaluation see one encoder): the paper's
combined prediction and SCEL target-embedding module are not reproduced, and the cross-level term
(on by default) is what carries category knowledge into the item encoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn
from tqdm.auto import tqdm

from rclrec.config import ConfigError, check_finite
from rclrec.data.dataset import DataError
from rclrec.losses.baselines import check_pair, nt_xent, supervised_contrastive
from rclrec.methods.augmentation import AugmentationMethod, last_targets
from rclrec.methods.base import Batch
from rclrec.models import build_encoder
from rclrec.similarity.index import default_cache_dir


@dataclass(frozen=True)
class HPMConfig:
    # No official code (docs/BASELINES.md 7): weight and tau are our choice, DuoRec's values.
    weight: float = 0.1  # (float) weight of the dual contrast; our choice (DuoRec's lambda)
    tau: float = 1.0  # (float) temperature; our choice (CL4SRec's and DuoRec's)
    cross_weight: float = 1.0  # (float) the item <-> category term; our choice (module doc)
    normalize: bool = False  # (bool) cosine instead of dot products
    category_file: str | None = None  # (str) lines "item category"; None = co-occurrence clusters
    num_clusters: int = 100  # (int) K of the stand-in clusters (capped at num_items // 2)

    def __post_init__(self) -> None:
        check_finite(self, "hpm")
        if self.num_clusters < 1:
            raise ConfigError(f"hpm.num_clusters must be >= 1, got {self.num_clusters}")


def read_category_file(path: str | Path, item_index: dict[str, int], num_items: int) -> np.ndarray:
    """Item categories from a file of ``item category`` lines (whitespace separated).

    Args:
        path: the file; blank lines and lines starting with # are skipped; an item listed twice
            keeps its first category; items not in ``item_index`` are ignored.
        item_index: original item id -> internal id (1..num_items).
        num_items: the largest internal id.

    Returns:
        (num_items + 1,) int64 category ids in 1..K; items without a line share one extra
        category K + 1 (if there are any); entry 0 (padding) is 0.
    """
    out = np.zeros(num_items + 1, dtype=np.int64)
    codes: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DataError(f"{path}:{lineno}: expected 'item category', got {line!r}")
            item = item_index.get(parts[0])
            if item is None or out[item]:
                continue
            out[item] = codes.setdefault(parts[1].strip(), len(codes) + 1)
    if not codes:
        raise DataError(f"{path}: no category for any item of the dataset")
    missing = out[1:] == 0
    if missing.any():
        out[1:][missing] = len(codes) + 1
    return out


def category_sequences(seqs: torch.Tensor, item_categories: torch.Tensor) -> torch.Tensor:
    """Map a left-padded item batch to its category batch (padding stays 0).

    Args:
        seqs: (B, L) int64 item ids, 0 = padding.
        item_categories: (V,) int64, category id (>= 1) of each item id; V > max id in seqs
            (so a [mask] id needs a row too). Row 0 is ignored.

    Returns:
        (B, L) int64 category ids, 0 where seqs is 0.
    """
    cats = item_categories.to(seqs.device)[seqs]
    return torch.where(seqs != 0, cats, torch.zeros_like(cats))


def hpm_dual_contrastive_loss(h_item: torch.Tensor, h_cat: torch.Tensor, targets: torch.Tensor,
                              item_categories: torch.Tensor, tau: float = 1.0,
                              cross_weight: float = 0.0, normalize: bool = False
                              ) -> torch.Tensor:
    """HPM's dual contrastive learning (DCL), re-implemented from the paper's description.

    [unverified] No official code exists (docs/BASELINES.md 7). The paper contrasts "at both the
    item level and the category level without data corruption", and RCL files HPM with the
    supervised (same-target) methods. We therefore use real in-batch sequences as positives:
        item level:      SupCon over the item-level preferences h_item, positives = the other
                         sequences with the same target item;
        category level:  SupCon over the category-level preferences h_cat, positives = the other
                         sequences whose target is in the same category;
        cross level:     (optional, ``cross_weight``) NT-Xent between h_item[i] and h_cat[i], the
                         two levels of the same sequence as a positive pair.
    L_DCL = L_item + L_cat + cross_weight * L_cross. Dot products by default (as DuoRec).

    Args:
        h_item: (B, D) item-level (low-level) representation of each sequence.
        h_cat: (B, D) category-level (high-level) representation.
        targets: (B,) target item ids.
        item_categories: (V,) int64 category of each item id (``cooccurrence_clusters`` as a
            stand-in when there is no category file).
        tau: temperature (1.0, our choice).
        cross_weight: weight of the cross-level term (0 = off).
        normalize: cosine instead of dot products.

    Returns:
        Scalar loss. The method adds ``hpm.weight * loss`` to the recommendation loss.
    """
    check_pair(h_item, h_cat)
    target_cats = item_categories.to(targets.device)[targets]
    loss = supervised_contrastive(h_item, targets, tau, normalize=normalize)
    loss = loss + supervised_contrastive(h_cat, target_cats, tau, normalize=normalize)
    if cross_weight:
        sim = "cos" if normalize else "dot"
        loss = loss + cross_weight * nt_xent(h_item, h_cat, tau=tau, similarity=sim)
    return loss


def cooccurrence_clusters(sequences: list[np.ndarray], num_items: int, num_clusters: int,
                          seed: int = 0, window: int = 3) -> np.ndarray:
    """Pseudo-categories from item co-occurrence, the HPM stand-in when no category file exists.

    Spectral clustering (Ng, Jordan & Weiss, 2001): items co-occur when they are at most
    ``window`` positions apart in a sequence; A = the symmetric co-occurrence count matrix without
    self loops; the top ``num_clusters`` eigenvectors of D^-1/2 A D^-1/2, row-normalised, are
    clustered with k-means. Items that never co-occur with another (isolated) have a zero
    embedding and share whichever cluster is nearest the origin. Sparse throughout: the cost is
    one sparse eigensolve (dense ``eigh`` below 2,000 items) and a k-means on num_items rows.

    Args:
        sequences: one int array of item ids (1..num_items) per user or training sequence.
        num_items: the largest item id.
        num_clusters: number of categories K (>= 1).
        seed: seeds the eigensolver's start vector and k-means.
        window: co-occurrence window in positions (>= 1).

    Returns:
        (num_items + 1,) int64 category ids in 1..K; entry 0 (padding) is 0.
    """
    if num_clusters < 1 or num_clusters > max(num_items, 1):
        raise ValueError(f"num_clusters must be in [1, num_items={num_items}], got {num_clusters}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    rng = np.random.default_rng(seed)
    out = np.zeros(num_items + 1, dtype=np.int64)
    if num_clusters == 1:
        out[1:] = 1
        return out
    rows, cols = [], []
    for s in sequences:
        s = np.asarray(s, dtype=np.int64)
        s = s[s > 0]
        for d in range(1, window + 1):
            if len(s) > d:
                rows.append(s[:-d])
                cols.append(s[d:])
    n = num_items
    if rows:
        r = np.concatenate(rows) - 1
        c = np.concatenate(cols) - 1
        a = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    else:
        a = sp.csr_matrix((n, n))
    a = (a + a.T).tocsr()
    a.setdiag(0)  # repeated items are not evidence of a relation
    a.eliminate_zeros()
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
    norm = sp.diags(inv) @ a @ sp.diags(inv)
    k = num_clusters
    if n <= 2000 or k >= n - 1:
        vals, vecs = np.linalg.eigh(norm.toarray())
        emb = vecs[:, np.argsort(vals)[::-1][:k]]
    else:
        v0 = rng.standard_normal(n)
        vals, vecs = spla.eigsh(norm, k=k, which="LA", v0=v0)
        emb = vecs
    lengths = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.divide(emb, lengths, out=np.zeros_like(emb), where=lengths > 0)
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=4, random_state=int(rng.integers(2**31))).fit_predict(emb)
    out[1:] = labels + 1
    return out


class HPM(AugmentationMethod):
    """Item-level and category-level supervised contrast (HPM-like, approximate)."""

    Config = HPMConfig
    section = "hpm"
    approximate = True

    def __init__(self, cfg, split, instances, device, item_ids=None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        self.item_categories = self.load_categories()
        self.num_categories = int(self.item_categories.max())
        self.categories_t = torch.from_numpy(self.item_categories).to(device)
        self.cat_encoder = build_encoder(cfg.encoder, self.num_categories).to(device)

    # ------------------------------------------------------------------ categories
    def load_categories(self) -> np.ndarray:
        if self.settings.category_file:
            return read_category_file(self.settings.category_file, self.item_index(),
                                      self.num_items)
        k = max(1, min(int(self.settings.num_clusters), self.num_items // 2))
        train = self.split.train
        digest = hashlib.sha1(f"{self.num_items}|{k}|{self.cfg.train.seed}".encode())
        for s in train:
            digest.update(np.asarray(s, dtype=np.int64).tobytes())
            digest.update(b"|")
        path = default_cache_dir() / "hpm" / f"clusters-{digest.hexdigest()[:20]}.npy"
        if path.exists():
            return np.load(path)
        tqdm.write(f"HPM: no category file; clustering {self.num_items} items into {k} "
                   f"co-occurrence categories (approximate stand-in)")
        cats = cooccurrence_clusters(train, self.num_items, k, seed=int(self.cfg.train.seed))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, cats)
        tmp.replace(path)
        return cats

    def item_index(self) -> dict[str, int]:
        """Original item id -> internal id; the ids themselves when the run gave none."""
        if self.item_ids is None:
            return {str(i): i for i in range(1, self.num_items + 1)}
        return {str(raw): i for i, raw in enumerate(self.item_ids, start=1)}

    # ------------------------------------------------------------------ training
    def parameters(self) -> list[nn.Parameter]:
        return list(self.cat_encoder.parameters())

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        if len(batch.index) < 2:
            return None, {}
        s = self.settings
        self.cat_encoder.train(encoder.training)
        h_item = hidden[:, -1]  # (B, D)
        h_cat = self.cat_encoder.last_state(category_sequences(batch.inputs, self.categories_t))
        loss = hpm_dual_contrastive_loss(h_item, h_cat, last_targets(batch), self.categories_t,
                                         tau=s.tau, cross_weight=s.cross_weight,
                                         normalize=s.normalize)
        return s.weight * loss, {"hpm": loss.detach(), "approximate": 1.0}
