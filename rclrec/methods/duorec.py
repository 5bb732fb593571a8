"""DuoRec (Qiu et al., WSDM 2022; docs/BASELINES.md 3), code mode ``us_x`` (the paper's numbers).

Per step, for every instance of the batch (its last position; see rclrec/methods/augmentation.py
for windows vs prefixes): a partner is drawn uniformly among the OTHER training instances with
the same last target (the instance itself when there is none); one extra forward pass encodes
the batch again (a second dropout mask, h') together with the partners (h_s), and
    loss = rec(h) + weight * NTXent(h', h_s)     (tau 1, dot product, 2B - 2 negatives)
DuoRec's dropout (0.5; 0.1 for ML-1M) is the encoder's setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rclrec.config import check_choice, check_finite
from rclrec.losses.baselines import SIMILARITIES, nt_xent
from rclrec.methods.augmentation import AugmentationMethod, encode_last, last_targets
from rclrec.methods.base import Batch
from rclrec.similarity.positives import StrongSampler


@dataclass(frozen=True)
class DuoRecConfig:
    # Defaults: the authors' run script (docs/BASELINES.md, section 3).
    weight: float = 0.1  # (float) lambda of the contrast (script: --lmd_sem 0.1)
    tau: float = 1.0  # (float) NT-Xent temperature (script: --tau 1)
    similarity: str = "dot"  # (str) dot (script: --sim dot) | cos
    # Drop in-batch same-target negatives: the RCL authors' "--ssl 4" variant, not DuoRec's.
    mask_same_target: bool = False  # (bool)

    def __post_init__(self) -> None:
        check_finite(self, "duorec")
        check_choice("duorec.similarity", self.similarity, SIMILARITIES)


def same_target_mask(targets: torch.Tensor) -> torch.Tensor:
    """In-batch false negatives: True where two different instances share the target.

    Args:
        targets: (N,) int64 target item ids.

    Returns:
        (N, N) bool, True at (i, j) iff i != j and targets[i] == targets[j].
    """
    same = targets[:, None] == targets[None, :]
    return same & ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)


def duorec_loss(h_dropout: torch.Tensor, h_same_target: torch.Tensor, tau: float = 1.0,
                similarity: str = "dot", mask: torch.Tensor | None = None) -> torch.Tensor:
    """DuoRec's contrastive term, code mode ``us_x`` (paper's numbers; docs/BASELINES.md 3).

    NT-Xent over {h'_1..h'_N, h_s1..h_sN}: h'_i = the anchor re-encoded with a NEW dropout mask (not
    the h of the recommendation loss), h_si = the representation of a training instance with the
    same target, drawn uniformly each batch. Negatives are the other 2N - 2 vectors; DuoRec does
    not mask same-target negatives (``mask`` adds that, as the RCL authors' ``--ssl 4`` does).

    Fallback (done by the caller): when instance i has no same-target partner, its own input
    sequence is encoded as h_si, so the pair degrades to two dropout views of the same sequence.

    Total (the authors' script, docs/BASELINES.md section 3):
    ``CE_rec(h) + 0.1 * duorec_loss(h', h_s)``.

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


class DuoRec(AugmentationMethod):
    """Dropout view + same-target supervised positive (DuoRec, mode us_x)."""

    Config = DuoRecConfig
    section = "duorec"

    def __init__(self, cfg, split, instances, device, item_ids=None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        self.rng = np.random.default_rng(int(cfg.train.seed) + 2)
        self.sampler = SameTargetSampler(instances.targets[:, -1], self.rng)

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        if len(batch.index) < 2:
            return None, {}
        s = self.settings
        partners = self.sampler.sample(batch.index)
        h_view, h_same = encode_last(encoder, batch.host_inputs, self.rows_inputs(partners),
                                     device=self.device)
        mask = same_target_mask(last_targets(batch)) if s.mask_same_target else None
        loss = duorec_loss(h_view, h_same, tau=s.tau, similarity=s.similarity, mask=mask)
        found = float((partners != batch.index).mean())
        return s.weight * loss, {"duorec": loss.detach(), "duorec_partner": found}
