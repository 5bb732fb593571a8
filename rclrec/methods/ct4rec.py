"""CT4Rec (Liu et al., KDD 2023; docs/BASELINES.md sec. 4): consistency across two dropout passes.

Per step the batch is encoded a second time (another dropout mask): H1 = the trainer's
``hidden``, H2 = encoder(inputs). With the states of every position that has a target:
    loss = mean(rec(H1), rec(H2))
           + rd_weight * RD(scores1, scores2)       symmetric KL of the item distributions
           + ur_weight * UR(z1, z2; tau 0.2)        symmetric KL of in-batch similarity rows
The trainer's rec(H1) is weighted 0.5 (``rec_loss_weight``) and this method adds 0.5 rec(H2),
so the total is exactly the mean of the two passes' losses plus the regularisers.

RD is at every position with a target (all positions with ``windows``, the last with
``prefixes``) over 51 candidates, as the official code: the target and ``RD_NEGATIVES`` = 50
uniform random items per position (``clip`` = 80 mimics its logit clip). Over the full item
set instead, RD made an epoch cost 5.3x SASRec's on a CPU (softmax and KL over P x num_items,
twice). UR uses the last-position states (B, D) by default (``ur_positions = "last"``);
``"all"`` uses every position with a target, as the official code (O((B L)^2) memory).
Defaults from the README: rd_alpha 1.0, con_alpha 5.0, similarities x5 (tau 0.2).
"""

from __future__ import annotations

import torch
from torch import nn

from rclrec.config import ConfigError
from rclrec.losses.baselines import (
    CT4REC_RD_WEIGHT,
    CT4REC_UR_TAU,
    CT4REC_UR_WEIGHT,
    ct4rec_rd_loss,
    ct4rec_ur_loss,
)
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod

RD_NEGATIVES = 50  # official --neg_sample_n


class CT4Rec(BaselineMethod):
    """Regularised dropout (RD) and user-representation consistency (UR)."""

    rec_loss_weight = 0.5  # the trainer's pass; the second pass adds the other half

    hyper = ("rd_weight", "ur_weight", "ur_tau", "clip", "ur_positions")
    rd_weight: float = CT4REC_RD_WEIGHT  # README --rd_alpha 1.0
    ur_weight: float = CT4REC_UR_WEIGHT  # README --con_alpha 5.0
    ur_tau: float = CT4REC_UR_TAU  # code: cosine similarities x 5
    clip: float | None = None  # None = no clip; 80.0 as the code's sampled logits
    ur_positions: str = "last"  # last (B, D) | all (every position with a target, as the code)

    @classmethod
    def code_constants(cls, cfg) -> dict[str, object]:
        return {"rd_negatives": RD_NEGATIVES}

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if self.ur_positions not in ("last", "all"):
            raise ConfigError(f"setting baseline.ur_positions must be last or all, "
                              f"got {self.ur_positions!r}")
        hidden2 = encoder(batch.inputs)  # (B, L, D), a second dropout mask
        s1, targets = select_target_positions(hidden, batch.targets)
        s2, _ = select_target_positions(hidden2, batch.targets)
        rec2 = recommendation_loss(self.rec_loss, s2, targets, encoder.item_table)
        rd = ct4rec_rd_loss(*self.candidate_scores(encoder, targets, s1, s2), clip=self.clip)
        if self.ur_positions == "all":
            ur = ct4rec_ur_loss(s1, s2, tau=self.ur_tau)
        else:
            ur = ct4rec_ur_loss(hidden[:, -1], hidden2[:, -1], tau=self.ur_tau)
        total = 0.5 * rec2 + self.rd_weight * rd + self.ur_weight * ur
        return total, {"rec2": float(rec2.detach()), "rd": float(rd.detach()),
                       "ur": float(ur.detach())}

    def candidate_scores(self, encoder: nn.Module, targets: torch.Tensor,
                         *states: torch.Tensor) -> list[torch.Tensor]:
        """(P, 1 + RD_NEGATIVES) scores of each (P, D) states: the target, then random items."""
        negatives = torch.randint(1, self.num_items + 1, (len(targets), RD_NEGATIVES),
                                  generator=self.generator).to(targets.device)
        table = encoder.item_table[torch.cat([targets[:, None], negatives], 1)]
        return [torch.einsum("pd,pcd->pc", s, table) for s in states]
