"""CT4Rec (Liu et al., KDD 2023; BASELINES.md sec. 4): consistency across two dropout passes.

Per step the batch is encoded a second time (another dropout mask): H1 = the trainer's
``hidden``, H2 = encoder(inputs). With the states of every position that has a target:
    loss = mean(rec(H1), rec(H2))
           + rd_weight * RD(scores1, scores2)       symmetric KL of the item distributions
           + ur_weight * UR(z1, z2; tau 0.2)        symmetric KL of in-batch similarity rows
The trainer adds rec(H1); this method returns 0.5 (rec(H2) - rec(H1)) + the two terms, so the
total is exactly the mean of the two passes' losses plus the regularisers.

RD is at every position with a target (all positions with ``windows``, the last with
``prefixes``), over the full item scores (the code: 51-way sampled softmax; ``clip`` = 80 mimics
its logit clip). UR uses the last-position states (B, D) by default (``ur_positions = "last"``);
``"all"`` uses every position with a target, as the official code (O((B L)^2) memory).
Defaults from the README: rd_alpha 1.0, con_alpha 5.0, similarities x5 (tau 0.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rclrec.losses.baselines import (
    CT4REC_RD_WEIGHT,
    CT4REC_UR_TAU,
    CT4REC_UR_WEIGHT,
    ct4rec_rd_loss,
    ct4rec_ur_loss,
)
from rclrec.losses.recommendation import select_target_positions
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod


class CT4Rec(BaselineMethod):
    """Regularised dropout (RD) and user-representation consistency (UR)."""

    hyper = ("rd_weight", "ur_weight", "ur_tau", "clip", "ur_positions")
    rd_weight: float = CT4REC_RD_WEIGHT  # README --rd_alpha 1.0
    ur_weight: float = CT4REC_UR_WEIGHT  # README --con_alpha 5.0
    ur_tau: float = CT4REC_UR_TAU  # code: cosine similarities x 5
    clip: float | None = None  # None = no clip; 80.0 as the code's sampled logits
    ur_positions: str = "last"  # last (B, D) | all (every position with a target, as the code)

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if self.ur_positions not in ("last", "all"):
            raise ValueError(f"ur_positions must be last or all, got {self.ur_positions!r}")
        hidden2 = encoder(batch.inputs)  # (B, L, D), a second dropout mask
        s1, targets = select_target_positions(hidden, batch.targets)
        s2, _ = select_target_positions(hidden2, batch.targets)
        logits1, logits2 = self.item_scores(s1, encoder), self.item_scores(s2, encoder)
        if self.cfg.train.loss == "ce":  # from the logits the RD term needs anyway
            rec1 = F.cross_entropy(logits1, targets - 1)
            rec2 = F.cross_entropy(logits2, targets - 1)
        else:
            rec1, rec2 = self.rec_loss(s1, targets, encoder), self.rec_loss(s2, targets, encoder)
        rd = ct4rec_rd_loss(logits1, logits2, clip=self.clip)
        if self.ur_positions == "all":
            ur = ct4rec_ur_loss(s1, s2, tau=self.ur_tau)
        else:
            ur = ct4rec_ur_loss(hidden[:, -1], hidden2[:, -1], tau=self.ur_tau)
        total = 0.5 * (rec2 - rec1) + self.rd_weight * rd + self.ur_weight * ur
        return total, {"rec2": float(rec2.detach()), "rd": float(rd.detach()),
                       "ur": float(ur.detach())}
