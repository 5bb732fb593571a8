"""Objectives shared by several contrastive baselines (docs/BASELINES.md sections 2-7).

Pure functions on tensors; none of them sees a model. An objective only one method uses lives
in that method's module (rclrec/methods/: duorec_loss, ct4rec_rd_loss, mclrec_meta_loss,
contrarec_ccc_loss, hpm_dual_contrastive_loss, ...). Shapes: B = batch, D = hidden size.

    nt_xent                 CL4SRec, DuoRec, MCLRec, HPM's cross-level term
    supervised_contrastive  ContraRec's context-context term, HPM's two levels
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIMILARITIES = ("dot", "cos")


def _similarity(a: torch.Tensor, b: torch.Tensor, similarity: str) -> torch.Tensor:
    """(M, D) x (K, D) -> (M, K) dot products or cosines."""
    if similarity == "dot":
        return a @ b.T
    if similarity == "cos":
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


def check_pair(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"expected two (N, D) tensors of one shape, got {tuple(z1.shape)} "
                         f"and {tuple(z2.shape)}")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 1.0,
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
            removed from the denominators of instance i's two anchors (e.g. DuoRec's
            ``same_target_mask``).
            The authors' code has no such mask; the positive pair is never removed.

    Returns:
        Scalar loss.
    """
    check_pair(z1, z2)
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
    # where(): the diagonal holds -inf, and 0 * -inf would be NaN. No branch or mask on `has`:
    # either would make a GPU wait for its values.
    per_anchor = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)
    per_anchor = torch.where(has, per_anchor / n_pos.clamp(min=1), torch.zeros_like(per_anchor))
    return -per_anchor.sum() / has.sum().clamp(min=1)
