"""CT4Rec (Liu et al., KDD 2023; docs/BASELINES.md sec. 4): consistency across two dropout passes.

Per step the batch is encoded a second time (another dropout mask): H1 = the trainer's
``hidden``, H2 = encoder(inputs). With the states of every position that has a target:
    loss = mean(rec(H1), rec(H2))
           + rd_weight * RD(scores1, scores2)       symmetric KL of the item distributions
           + ur_weight * UR(z1, z2; tau 0.2)        symmetric KL of in-batch similarity rows
The trainer's rec(H1) is weighted 0.5 (``rec_loss_weight``) and this method adds 0.5 rec(H2),
so the total is exactly the mean of the two passes' losses plus the regularisers.

RD is at every position with a target (all positions with ``windows``, the last with
``prefixes``) over 1 + ``rd_negatives`` candidates, as the official code: the target and 50
uniform random items per position (``clip`` = 80 mimics its logit clip). Over the full item
set instead, RD made an epoch cost 5.3x SASRec's on a CPU (softmax and KL over P x num_items,
twice). UR uses the last-position states (B, D) by default (``ur_positions = "last"``);
``"all"`` uses every position with a target, as the official code (O((B L)^2) memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import ConfigError, check_choice, check_finite
from rclrec.devices import to_device
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods.augmentation import AugmentationMethod
from rclrec.methods.base import Batch


@dataclass(frozen=True)
class CT4RecConfig:
    rd_weight: float = 1.0  # (float) weight of RD; official README --rd_alpha 1.0
    ur_weight: float = 5.0  # (float) weight of UR; official README --con_alpha 5.0
    ur_tau: float = 0.2  # (float) UR temperature; official code: cosine similarities x 5
    clip: float | None = None  # (float) clip RD's logits to +-clip; None = off (code: 80)
    ur_positions: str = "last"  # (str) last (B, D) | all (every position with a target: code)
    rd_negatives: int = 50  # (int) random items beside the target in RD; code --neg_sample_n 50

    def __post_init__(self) -> None:
        check_finite(self, "ct4rec")
        check_choice("ct4rec.ur_positions", self.ur_positions, ("last", "all"))
        if self.rd_negatives < 1:
            raise ConfigError(f"ct4rec.rd_negatives must be >= 1, got {self.rd_negatives}")


def cosine_matrix(z: torch.Tensor) -> torch.Tensor:
    """(M, D) -> (M, M) cosine similarities."""
    # Two normalised operands, not z @ z.T: the same rounding as before (same_results.py).
    return F.normalize(z, dim=-1) @ F.normalize(z, dim=-1).T


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
    Weight: ``ct4rec.rd_weight`` = 1.0 (rd_alpha). Gradient flows into both passes.

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
                   tau: float = 0.2) -> torch.Tensor:
    """CT4Rec's user-representation consistency (UR) term, type ``kl`` (docs/BASELINES.md sec. 4).

    The M representations of a pass are L2-normalised; each row of S_k = Z_k Z_k^T / tau with the
    diagonal set to -1e4 (self excluded, as in the code) is a softmax distribution P_k over the
    other M - 1 representations; the loss is 0.5 [KL(P1 || P2) + KL(P2 || P1)] averaged over rows.
    So the two passes must agree on how each user relates to the others in the batch.
    Weight: ``ct4rec.ur_weight`` = 5.0 (con_alpha), tau = 0.2.

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
    s1 = cosine_matrix(z1).div(tau).masked_fill(eye, -1e4)
    s2 = cosine_matrix(z2).div(tau).masked_fill(eye, -1e4)
    return symmetric_kl(s1, s2).mean()


class CT4Rec(AugmentationMethod):
    """Regularised dropout (RD) and user-representation consistency (UR)."""

    Config = CT4RecConfig
    section = "ct4rec"
    rec_loss_weight = 0.5  # the trainer's pass; the second pass adds the other half

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        s = self.settings
        hidden2 = encoder(batch.inputs)  # (B, L, D), a second dropout mask
        s1, targets = select_target_positions(hidden, batch.host_targets)
        s2, _ = select_target_positions(hidden2, batch.host_targets)
        rec2 = recommendation_loss(self.rec_loss, s2, targets, encoder.item_table)
        rd = ct4rec_rd_loss(*self.candidate_scores(encoder, targets, s1, s2), clip=s.clip)
        if s.ur_positions == "all":
            ur = ct4rec_ur_loss(s1, s2, tau=s.ur_tau)
        else:
            ur = ct4rec_ur_loss(hidden[:, -1], hidden2[:, -1], tau=s.ur_tau)
        total = 0.5 * rec2 + s.rd_weight * rd + s.ur_weight * ur
        return total, {"rec2": rec2.detach(), "rd": rd.detach(), "ur": ur.detach()}

    def candidate_scores(self, encoder: nn.Module, targets: torch.Tensor,
                         *states: torch.Tensor) -> list[torch.Tensor]:
        """(P, 1 + rd_negatives) scores of each (P, D) states: the target, then random items."""
        negatives = to_device(torch.randint(1, self.num_items + 1,
                                            (len(targets), self.settings.rd_negatives),
                                            generator=self.generator), targets.device)
        table = encoder.item_table[torch.cat([targets[:, None], negatives], 1)]
        return [torch.einsum("pd,pcd->pc", s, table) for s in states]
