"""Objectives of the contrastive baselines RCL compares with (docs/BASELINES.md sections 2-7).

Pure functions on tensors (plus one small nn.Module, MCLRec's learnable augmenter); none of them
sees a model. The trainer runs the forward passes and combines the terms as
``rclrec/methods/baselines_spec.md`` describes. Shapes: B = batch, D = hidden size, C = classes.

Sources, per docs/BASELINES.md (section numbers are that file's):
    CL4SRec   (Xie et al., ICDE 2022)    sec. 2  nt_xent
    DuoRec    (Qiu et al., WSDM 2022)    sec. 3  duorec_loss
    CT4Rec    (Liu et al., KDD 2023)     sec. 4  ct4rec_rd_loss, ct4rec_ur_loss
    MCLRec    (Qin et al., SIGIR 2023)   sec. 5  MLPAugmenter, mclrec_meta_loss, mclrec_step_loss
    ContraRec (Wang et al., TOIS 2023)   sec. 6  contrarec_ctc_loss, contrarec_ccc_loss
    HPM       (Huang et al., SIGIR 2023) sec. 7  hpm_dual_contrastive_loss, category_sequences,
                                                 cooccurrence_clusters
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Default weights and temperatures, with their source (docs/BASELINES.md).

CL4SREC_TAU = 1.0  # DuoRec repo, tau=1 (sec. 2)
CL4SREC_WEIGHT = 0.1  # lambda, DuoRec repo (sec. 2)
DUOREC_TAU = 1.0  # duorec.sh --tau=1 (sec. 3)
DUOREC_WEIGHT = 0.1  # duorec.sh --lmd_sem=0.1 (sec. 3)
CT4REC_RD_WEIGHT = 1.0  # README --rd_alpha 1.0 (sec. 4)
CT4REC_UR_WEIGHT = 5.0  # README --con_alpha 5.0 (sec. 4)
CT4REC_UR_TAU = 0.2  # code: similarities scaled by 5 (sec. 4)
MCLREC_TAU = 1.0  # MCLRec.yaml tau=1.0; the meta terms hard-code 1.0 (sec. 5)
MCLREC_RL_WEIGHT = 0.1  # meta_rl returns 0.1 * sum of three margin terms (sec. 5)
# Per-dataset lmd (weight of NTXent(z1, z2)), beta (weight of the meta terms in the encoder
# steps) and dropout, from the MCLRec scripts (sec. 5).
MCLREC_SETTINGS: dict[str, dict[str, float]] = {
    "beauty": {"lmd": 0.0, "beta": 0.05, "dropout": 0.5},
    "sports": {"lmd": 0.04, "beta": 0.4, "dropout": 0.5},
    "yelp": {"lmd": 0.03, "beta": 0.1, "dropout": 0.5},
    "ml-1m": {"lmd": 0.0, "beta": 0.01, "dropout": 0.1},
}
CONTRAREC_CTC_TAU = 1.0  # ReChorus --ctc_temp 1 (sec. 6)
CONTRAREC_CCC_TAU = 0.2  # ReChorus --ccc_temp 0.2 (sec. 6)
CONTRAREC_WEIGHT = 1.0  # ReChorus --gamma 1 (sec. 6)
HPM_TAU = 1.0  # no official code: our choice, as CL4SRec/DuoRec (sec. 7)
HPM_WEIGHT = 0.1  # no official code: our choice, as DuoRec's lambda (sec. 7)

_SIMILARITIES = ("dot", "cos")


def _similarity(a: torch.Tensor, b: torch.Tensor, similarity: str) -> torch.Tensor:
    """(M, D) x (K, D) -> (M, K) dot products or cosines."""
    if similarity == "dot":
        return a @ b.T
    if similarity == "cos":
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    raise ValueError(f"similarity must be one of {_SIMILARITIES}, got {similarity!r}")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"expected two (N, D) tensors of one shape, got {tuple(z1.shape)} "
                         f"and {tuple(z2.shape)}")


# ---------------------------------------------------------------------------------------------
# CL4SRec / DuoRec


def same_target_mask(targets: torch.Tensor) -> torch.Tensor:
    """In-batch false negatives: True where two different instances share the target.

    Args:
        targets: (N,) int64 target item ids.

    Returns:
        (N, N) bool, True at (i, j) iff i != j and targets[i] == targets[j].
    """
    same = targets[:, None] == targets[None, :]
    return same & ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = CL4SREC_TAU,
            similarity: str = "dot", mask: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent (SimCLR) over the 2N views, as CL4SRec and DuoRec compute it (docs/BASELINES.md 2).

    With z = [z1; z2] (2N, D), anchor a's positive is its other view p(a) = a +/- N, and the
    negatives are the other 2N - 2 views:
        l_a = -log( exp(s(z_a, z_p(a)) / tau) / sum_{k != a} exp(s(z_a, z_k) / tau) )
    averaged over the 2N anchors. s = dot product (the authors' default) or cosine.

    Args:
        z1: (N, D) first views.
        z2: (N, D) second views; z2[i] is the positive of z1[i].
        tau: temperature (CL4SRec/DuoRec: 1.0).
        similarity: "dot" or "cos".
        mask: optional (N, N) bool over instances, True at (i, j) = instance j's two views are
            removed from the denominators of instance i's two anchors (e.g. ``same_target_mask``).
            The authors' code has no such mask; the positive pair is never removed.

    Returns:
        Scalar loss.
    """
    _check_pair(z1, z2)
    n = z1.shape[0]
    z = torch.cat([z1, z2], 0)  # (2N, D)
    logits = _similarity(z, z, similarity) / tau  # (2N, 2N)
    idx = torch.arange(2 * n, device=z.device)
    pos = (idx + n) % (2 * n)
    exclude = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if mask is not None:
        if mask.shape != (n, n):
            raise ValueError(f"mask must be ({n}, {n}), got {tuple(mask.shape)}")
        extra = mask.to(device=z.device, dtype=torch.bool).repeat(2, 2)  # (2N, 2N)
        extra[idx, pos] = False  # the positive is never a false negative
        exclude = exclude | extra
    logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, pos)


def duorec_loss(h_dropout: torch.Tensor, h_same_target: torch.Tensor, tau: float = DUOREC_TAU,
                similarity: str = "dot", mask: torch.Tensor | None = None) -> torch.Tensor:
    """DuoRec's contrastive term, code mode ``us_x`` (paper's numbers; docs/BASELINES.md 3).

    NT-Xent over {h'_1..h'_N, h_s1..h_sN}: h'_i = the anchor re-encoded with a NEW dropout mask (not
    the h of the recommendation loss), h_si = the representation of a training instance with the
    same target, drawn uniformly each batch. Negatives are the other 2N - 2 vectors; DuoRec does
    not mask same-target negatives (``mask`` adds that, as the RCL authors' ``--ssl 4`` does).

    Fallback (done by the caller): when instance i has no same-target partner, its own input
    sequence is encoded as h_si, so the pair degrades to two dropout views of the same sequence.

    Total (duorec.sh): ``CE_rec(h) + 0.1 * duorec_loss(h', h_s)``.

    Args:
        h_dropout: (B, D) second dropout pass of the anchors.
        h_same_target: (B, D) same-target partners (or the anchor itself, see above).
        tau: temperature (1.0).
        similarity: "dot" (DuoRec default) or "cos".
        mask: optional (B, B) false-negative mask, as in ``nt_xent``.

    Returns:
        Scalar loss.
    """
    return nt_xent(h_dropout, h_same_target, tau=tau, similarity=similarity, mask=mask)


# ---------------------------------------------------------------------------------------------
# CT4Rec


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return values.mean()
    valid = valid.to(values.device, torch.bool)
    if valid.shape != values.shape:
        raise ValueError(f"valid must have shape {tuple(values.shape)}, got {tuple(valid.shape)}")
    return (values * valid).sum() / valid.sum().clamp(min=1)


def symmetric_kl(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """0.5 [KL(p1 || p2) + KL(p2 || p1)] over the last axis, p_k = softmax(logits_k).

    Args:
        logits1: (..., C).
        logits2: (..., C).

    Returns:
        (...) per-row symmetric KL.
    """
    lp1 = F.log_softmax(logits1, dim=-1)
    lp2 = F.log_softmax(logits2, dim=-1)
    kl12 = (lp1.exp() * (lp1 - lp2)).sum(-1)
    kl21 = (lp2.exp() * (lp2 - lp1)).sum(-1)
    return 0.5 * (kl12 + kl21)


def ct4rec_rd_loss(logits1: torch.Tensor, logits2: torch.Tensor, valid: torch.Tensor | None = None,
                   clip: float | None = None) -> torch.Tensor:
    """CT4Rec's regularised-dropout (RD) term (docs/BASELINES.md sec. 4; R-Drop).

    The symmetric KL between the two dropout passes' output distributions at each position,
    averaged over valid positions. The official code uses 51-way sampled logits (target + 50
    negatives) clipped to [-80, 80]; with full-softmax training pass the full (B, num_items) logits.
    Weight: ``CT4REC_RD_WEIGHT`` = 1.0 (rd_alpha). Gradient flows into both passes.

    Args:
        logits1: (..., C) scores of pass 1.
        logits2: (..., C) scores of pass 2, same candidates in the same order.
        valid: optional (...) bool, True at non-padding positions.
        clip: clamp the logits to [-clip, clip] first (official: 80), or None.

    Returns:
        Scalar loss.
    """
    if logits1.shape != logits2.shape:
        raise ValueError(f"logit shapes differ: {tuple(logits1.shape)} vs {tuple(logits2.shape)}")
    if clip is not None:
        logits1, logits2 = logits1.clamp(-clip, clip), logits2.clamp(-clip, clip)
    return _masked_mean(symmetric_kl(logits1, logits2), valid)


def ct4rec_ur_loss(z1: torch.Tensor, z2: torch.Tensor, valid: torch.Tensor | None = None,
                   tau: float = CT4REC_UR_TAU) -> torch.Tensor:
    """CT4Rec's user-representation consistency (UR) term, type ``kl`` (docs/BASELINES.md sec. 4).

    The M representations of a pass are L2-normalised; each row of S_k = Z_k Z_k^T / tau with the
    diagonal set to -1e4 (self excluded, as in the code) is a softmax distribution P_k over the
    other M - 1 representations; the loss is 0.5 [KL(P1 || P2) + KL(P2 || P1)] averaged over rows.
    So the two passes must agree on how each user relates to the others in the batch.
    Weight: ``CT4REC_UR_WEIGHT`` = 5.0 (con_alpha), tau = 0.2.

    The official code uses every non-padding position (M = valid positions of the batch, memory
    O(M^2)); with last-position representations pass (B, D) and no ``valid``.

    Args:
        z1: (M, D) or (B, L, D) representations of pass 1.
        z2: same shape, pass 2.
        valid: with (B, L, D) inputs, (B, L) bool selecting the positions used.
        tau: temperature (0.2).

    Returns:
        Scalar loss.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"shapes differ: {tuple(z1.shape)} vs {tuple(z2.shape)}")
    if valid is not None:
        valid = valid.to(z1.device, torch.bool)
        z1, z2 = z1[valid], z2[valid]
    elif z1.dim() != 2:
        z1, z2 = z1.reshape(-1, z1.shape[-1]), z2.reshape(-1, z2.shape[-1])
    m = z1.shape[0]
    if m < 2:
        return z1.sum() * 0.0
    eye = torch.eye(m, dtype=torch.bool, device=z1.device)
    # -1e4, not -inf: exp underflows to exactly 0 and 0 * (finite) keeps the KL free of NaN.
    s1 = _similarity(z1, z1, "cos").div(tau).masked_fill(eye, -1e4)
    s2 = _similarity(z2, z2, "cos").div(tau).masked_fill(eye, -1e4)
    return symmetric_kl(s1, s2).mean()


# ---------------------------------------------------------------------------------------------
# MCLRec


class MLPAugmenter(nn.Module):
    """MCLRec's learnable model augmenter (MCLRec repo ``Extractor``; docs/BASELINES.md 5).

    A 3-layer MLP hidden_dim -> 32 -> 16 -> hidden_dim with GELU after the first two layers and an
    L2 normalisation of the output. MCLRec trains two of them (z3 = g1(z1), z4 = g2(z2)) with
    their own Adam optimiser; they keep PyTorch's default Linear initialisation, as in the repo.

    Args:
        hidden_dim: input and output size (the encoder's D; 64 in MCLRec).
        widths: the two hidden widths (32, 16).
    """

    def __init__(self, hidden_dim: int = 64, widths: tuple[int, int] = (32, 16)) -> None:
        super().__init__()
        self.dense1 = nn.Linear(hidden_dim, widths[0])
        self.dense2 = nn.Linear(widths[0], widths[1])
        self.dense3 = nn.Linear(widths[1], hidden_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D), unit L2 norm per row."""
        h = F.gelu(self.dense1(z))
        h = F.gelu(self.dense2(h))
        return F.normalize(self.dense3(h), dim=-1)


def mclrec_margin_regularizer(za: torch.Tensor, zb: torch.Tensor,
                              tau: float = MCLREC_TAU) -> torch.Tensor:
    """MCLRec's margin term for one pair of view sets (``meta_contrast_rl_1``; sec. 5).

    With the NT-Xent logits of (za, zb) (dot / tau): per anchor row i, p_i = positive logit, n_ij
    its 2N - 2 negative logits, m_i = max_j n_ij; then
        mean_i relu(p_i - min(p_i, m_i)) + mean_{i,j} relu(max(p_i, m_i) - n_ij).
    Reproduced as the code computes it (docs/BASELINES.md calls the formula odd; it is not "fixed").

    Args:
        za: (N, D).
        zb: (N, D).
        tau: temperature of the logits (MCLRec.yaml tau = 1.0).

    Returns:
        Scalar.
    """
    _check_pair(za, zb)
    n = za.shape[0]
    z = torch.cat([za, zb], 0)
    logits = (z @ z.T) / tau
    idx = torch.arange(2 * n, device=z.device)
    pos_idx = (idx + n) % (2 * n)
    p = logits[idx, pos_idx][:, None]  # (2N, 1)
    keep = torch.ones(2 * n, 2 * n, dtype=torch.bool, device=z.device)
    keep[idx, idx] = False
    keep[idx, pos_idx] = False
    neg = logits[keep].reshape(2 * n, 2 * n - 2)  # (2N, 2N - 2)
    m = neg.max(1, keepdim=True).values
    lower, upper = torch.minimum(p, m), torch.maximum(p, m)
    return F.relu(p - lower).mean() + F.relu(upper - neg).mean()


def mclrec_meta_loss(z1: torch.Tensor, z2: torch.Tensor, z3: torch.Tensor, z4: torch.Tensor,
                     tau: float = MCLREC_TAU, use_rl: bool = True,
                     rl_weight: float = MCLREC_RL_WEIGHT) -> torch.Tensor:
    """MCLRec's meta contrast (``meta_contrast``; docs/BASELINES.md sec. 5).

        L_meta = NTXent(z1, z4) + NTXent(z2, z3) + NTXent(z3, z4)
                 [+ rl_weight * (R(z1, z4) + R(z2, z3) + R(z3, z4))   if use_rl]
    with NT-Xent dot / tau (tau = 1.0) and R = ``mclrec_margin_regularizer``.

    Args:
        z1: (N, D) encoder output of augmented view 1.
        z2: (N, D) encoder output of augmented view 2.
        z3: (N, D) g1(z1), first learnable augmenter.
        z4: (N, D) g2(z2), second learnable augmenter.
        tau: temperature (1.0).
        use_rl: add the margin regulariser (MCLRec's ``use_rl=1``).
        rl_weight: its weight (0.1).

    Returns:
        Scalar loss. The encoder steps weight it by beta, the augmenter step by 1.
    """
    pairs = ((z1, z4), (z2, z3), (z3, z4))
    loss = sum(nt_xent(a, b, tau=tau, similarity="dot") for a, b in pairs)
    if use_rl:
        loss = loss + rl_weight * sum(mclrec_margin_regularizer(a, b, tau=tau) for a, b in pairs)
    return loss


def mclrec_step_loss(step: int, rec_loss: torch.Tensor | None, z1: torch.Tensor,
                     z2: torch.Tensor, z3: torch.Tensor, z4: torch.Tensor, lmd: float,
                     beta: float, tau: float = MCLREC_TAU, use_rl: bool = True) -> torch.Tensor:
    """The loss of one of MCLRec's three alternating steps (``calculate_loss`` modes; sec. 5).

        steps 1 and 3 (encoder):   CE + lmd * NTXent(z1, z2) + beta * L_meta
        step 2 (augmenters):       lmd * NTXent(z1, z2) + 1.0 * L_meta   (no CE)

    Args:
        step: 1, 2 or 3.
        rec_loss: scalar recommendation loss (ignored, may be None, in step 2).
        z1, z2, z3, z4: (N, D) as in ``mclrec_meta_loss``.
        lmd: weight of NTXent(z1, z2) (``MCLREC_SETTINGS``).
        beta: weight of the meta terms in the encoder steps.
        tau: temperature (1.0).
        use_rl: add the margin regulariser.

    Returns:
        Scalar loss.
    """
    if step not in (1, 2, 3):
        raise ValueError(f"step must be 1, 2 or 3, got {step}")
    cl0 = nt_xent(z1, z2, tau=tau, similarity="dot")
    meta = mclrec_meta_loss(z1, z2, z3, z4, tau=tau, use_rl=use_rl)
    if step == 2:
        return lmd * cl0 + meta
    if rec_loss is None:
        raise ValueError("rec_loss is required in steps 1 and 3")
    return rec_loss + lmd * cl0 + beta * meta


# ---------------------------------------------------------------------------------------------
# ContraRec


def contrarec_ctc_loss(scores: torch.Tensor, targets: torch.Tensor | None = None,
                       tau: float = CONTRAREC_CTC_TAU) -> torch.Tensor:
    """ContraRec's context-target contrast (ReChorus ``ContraRec.loss``; docs/BASELINES.md sec. 6).

        L_ctc = -tau * mean_b log softmax(scores_b / tau)[target_b]

    ReChorus scores [target, num_neg sampled negatives] with the target in column 0
    (num_neg = 1 in its example: a 2-way softmax); with full item scores pass ``targets`` and it is
    tau times the full cross-entropy.

    Args:
        scores: (B, C) dot products h . e_i.
        targets: (B,) column of the positive; None = column 0.
        tau: temperature (ctc_temp = 1).

    Returns:
        Scalar loss.
    """
    if targets is None:
        targets = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return tau * F.cross_entropy(scores / tau, targets)


def supervised_contrastive(z: torch.Tensor, labels: torch.Tensor, tau: float,
                           normalize: bool = True) -> torch.Tensor:
    """SupCon (Khosla et al., 2020): positives of an anchor = the other rows with its label.

        l_a = -(1 / |P(a)|) sum_{p in P(a)} log( exp(z_a.z_p / tau)
                                                 / sum_{k != a} exp(z_a.z_k / tau) )

    averaged over the anchors with at least one positive (0 if none has one).

    Args:
        z: (M, D) representations.
        labels: (M,) int labels.
        tau: temperature.
        normalize: L2-normalise z first (cosine similarities).

    Returns:
        Scalar loss.
    """
    if normalize:
        z = F.normalize(z, dim=-1)
    m = z.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    # where(): the diagonal holds -inf, and 0 * -inf would be NaN.
    per_anchor = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)
    return -(per_anchor[has] / n_pos[has]).mean()


def contrarec_ccc_loss(z1: torch.Tensor, z2: torch.Tensor, targets: torch.Tensor,
                       tau: float = CONTRAREC_CCC_TAU) -> torch.Tensor:
    """ContraRec's context-context contrast (ReChorus ``ContraLoss``; docs/BASELINES.md sec. 6).

    The 2B views [z1; z2] are L2-normalised; the positives of a view are all other views whose
    instance has the same target item (its own other view included); the denominator is the
    other 2B - 1 views; the SupCon loss is multiplied by tau, as ReChorus does:
        L_ccc = tau * SupCon([z1; z2], [targets; targets], tau)
    Total: ``L_ctc + gamma * L_ccc`` with gamma = 1.

    Args:
        z1: (B, D) encoder outputs of the first augmented history (``contrarec_view``).
        z2: (B, D) second augmented history.
        targets: (B,) target item ids.
        tau: temperature (ccc_temp = 0.2).

    Returns:
        Scalar loss.
    """
    _check_pair(z1, z2)
    labels = torch.cat([targets, targets], 0)
    return tau * supervised_contrastive(torch.cat([z1, z2], 0), labels, tau, normalize=True)


# ---------------------------------------------------------------------------------------------
# HPM (no official code; a documented re-implementation from the paper's description)


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
                              item_categories: torch.Tensor, tau: float = HPM_TAU,
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
        Scalar loss. The trainer adds ``HPM_WEIGHT * loss`` to the recommendation loss.
    """
    _check_pair(h_item, h_cat)
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
