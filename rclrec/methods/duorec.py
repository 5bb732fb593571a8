"""DuoRec (Qiu et al., WSDM 2022; docs/BASELINES.md 3), code mode ``us_x`` (the paper's numbers).

Per step, for every instance of the batch (its last position; see ``cl4srec`` for windows vs
prefixes): a partner is drawn uniformly among the OTHER training instances with the same
last target (the instance itself when there is none); one extra forward pass encodes the batch
again (a second dropout mask, h') together with the partners (h_s), and
    loss = rec(h) + weight * NTXent(h', h_s)     (tau 1, dot product, 2B - 2 negatives)
Defaults from duorec.sh: weight (lmd_sem) 0.1, tau 1. DuoRec's dropout (0.5; 0.1 for ML-1M) is
the encoder's setting.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rclrec.losses.baselines import DUOREC_TAU, DUOREC_WEIGHT, duorec_loss, same_target_mask
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod, encode_last, last_targets
from rclrec.similarity.positives import StrongSampler


class SameTargetSampler:
    """Draws, per training instance, another instance with the same last target, uniformly.

    Args:
        targets: (N,) last target of every training instance.
        rng: the generator of the draws.
    """

    def __init__(self, targets: np.ndarray, rng: np.random.Generator) -> None:
        self.targets = np.asarray(targets, dtype=np.int64)
        self.groups = StrongSampler(self.targets, rng=rng)

    def sample(self, rows: np.ndarray) -> np.ndarray:
        """(B,) instance rows -> (B,) partners; the row itself where none shares its target."""
        rows = np.asarray(rows, dtype=np.int64)
        partner = self.groups.sample(rows)
        return np.where(partner >= 0, partner, rows)

    def share_with_partner(self) -> float:
        """Fraction of instances with at least one other instance of the same target."""
        return float((self.groups.counts() > 0).mean())


class DuoRec(BaselineMethod):
    """Dropout view + same-target supervised positive (DuoRec, mode us_x)."""

    hyper = ("weight", "tau", "similarity", "mask_same_target")
    weight: float = DUOREC_WEIGHT  # duorec.sh --lmd_sem 0.1
    tau: float = DUOREC_TAU  # duorec.sh --tau 1
    similarity: str = "dot"  # dot (authors) | cos
    mask_same_target: bool = False  # option: drop in-batch same-target negatives (not DuoRec's)

    def __init__(self, cfg, split, instances, device) -> None:
        super().__init__(cfg, split, instances, device)
        self.rng = np.random.default_rng(int(cfg.train.seed) + 2)
        self.sampler = SameTargetSampler(instances.targets[:, -1], self.rng)

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if len(batch.index) < 2:
            return None, {}
        partners = self.sampler.sample(batch.index)
        h_view, h_same = encode_last(encoder, batch.inputs, self.rows_tensor(partners))
        mask = same_target_mask(last_targets(batch)) if self.mask_same_target else None
        loss = duorec_loss(h_view, h_same, tau=self.tau, similarity=self.similarity, mask=mask)
        found = float((partners != batch.index).mean())
        return self.weight * loss, {"duorec": float(loss.detach()), "duorec_partner": found}
