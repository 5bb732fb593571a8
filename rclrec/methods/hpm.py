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
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rclrec.data.dataset import DataError
from rclrec.losses.baselines import (
    HPM_TAU,
    HPM_WEIGHT,
    category_sequences,
    cooccurrence_clusters,
    hpm_dual_contrastive_loss,
)
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod, last_targets
from rclrec.models import build_encoder
from rclrec.similarity.index import default_cache_dir


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


class HPM(BaselineMethod):
    """Item-level and category-level supervised contrast (HPM-like, approximate)."""

    approximate = True
    hyper = ("weight", "tau", "cross_weight", "normalize", "category_file", "num_clusters")
    weight: float = HPM_WEIGHT  # our choice (DuoRec's lambda): no official code
    tau: float = HPM_TAU  # our choice (CL4SRec/DuoRec's tau)
    cross_weight: float = 1.0  # our choice: the item <-> category term (see module docstring)
    normalize: bool = False  # cosine instead of dot products
    category_file: str | None = None  # lines "item category"; None = co-occurrence clusters
    num_clusters: int = 100  # K of the stand-in clusters (capped at num_items // 2)

    def __init__(self, cfg, split, instances, device) -> None:
        super().__init__(cfg, split, instances, device)
        self.item_categories = self.load_categories()
        self.num_categories = int(self.item_categories.max())
        self.categories_t = torch.from_numpy(self.item_categories).to(device)
        self.cat_encoder = build_encoder(cfg.encoder, self.num_categories).to(device)

    # ------------------------------------------------------------------ categories
    def load_categories(self) -> np.ndarray:
        if self.category_file:
            return read_category_file(self.category_file, self.item_index(), self.num_items)
        k = max(1, min(int(self.num_clusters), self.num_items // 2))
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
        """Original item id -> internal id; the ids themselves when the dataset keeps none."""
        from rclrec.run import load_data  # here: rclrec.run imports the methods

        item_ids = load_data(self.cfg).item_ids
        if item_ids is None:
            return {str(i): i for i in range(1, self.num_items + 1)}
        return {str(raw): i for i, raw in enumerate(item_ids, start=1)}

    # ------------------------------------------------------------------ training
    def parameters(self) -> list[nn.Parameter]:
        return list(self.cat_encoder.parameters())

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if len(batch.index) < 2:
            return None, {}
        self.cat_encoder.train(encoder.training)
        h_item = hidden[:, -1]  # (B, D)
        h_cat = self.cat_encoder.last_state(category_sequences(batch.inputs, self.categories_t))
        loss = hpm_dual_contrastive_loss(h_item, h_cat, last_targets(batch), self.categories_t,
                                         tau=self.tau, cross_weight=self.cross_weight,
                                         normalize=self.normalize)
        return self.weight * loss, {"hpm": float(loss.detach()), "approximate": 1.0}
