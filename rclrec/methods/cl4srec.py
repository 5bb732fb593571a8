"""CL4SRec (Xie et al., ICDE 2022; docs/BASELINES.md sec. 2): contrast of two augmented views.

Per step: two augmented views of every instance of the batch (two DIFFERENT operators among
crop / mask / reorder, ``two_views``), one extra forward pass encodes both, and
    loss = rec(h) + weight * NTXent(z1, z2)     (tau 1, dot product; DuoRec repo defaults)
where z1, z2 are the encoder states at the last position of the two views. Which instances are
contrasted and how items are masked: rclrec/methods/augmentation.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rclrec.config import check_choice, check_finite
from rclrec.data.augment import DUOREC_RATIOS, ICLREC_RATIOS, MCLREC_RATIOS, two_views
from rclrec.losses.baselines import SIMILARITIES, nt_xent
from rclrec.methods.augmentation import MASK_TOKENS, AugmentationMethod, encode_last
from rclrec.methods.base import Batch


@dataclass(frozen=True)
class CL4SRecConfig:
    weight: float = 0.1  # (float) lambda of the contrast; DuoRec repo's CL4SRec: 0.1
    tau: float = 1.0  # (float) NT-Xent temperature; DuoRec repo: 1.0
    similarity: str = "dot"  # (str) dot (DuoRec repo) | cos
    # View ratios (docs/BASELINES.md sec. 2): DuoRec repo's eta, gamma, beta; MCLRec's repo uses
    # 0.5 / 0.5 / 0.8, ICLRec's 0.2 / 0.7 / 0.2 (rclrec/data/augment.py).
    crop: float = DUOREC_RATIOS["crop"]  # (float) eta: share of items a crop keeps
    mask: float = DUOREC_RATIOS["mask"]  # (float) gamma: share of items masked
    reorder: float = DUOREC_RATIOS["reorder"]  # (float) beta: share of items shuffled
    mask_token: str = "row"  # (str) row (a [mask] row: the paper, DuoRec code) | pad (id 0)

    # The old [baseline] section's preset of view ratios, for configs saved with it.
    BASELINE_PRESETS = {"ratios": {"duorec": DUOREC_RATIOS, "mclrec": MCLREC_RATIOS,
                                   "iclrec": ICLREC_RATIOS}}

    def __post_init__(self) -> None:
        check_finite(self, "cl4srec")
        check_choice("cl4srec.similarity", self.similarity, SIMILARITIES)
        check_choice("cl4srec.mask_token", self.mask_token, MASK_TOKENS)


class CL4SRec(AugmentationMethod):
    """Contrastive learning with crop / mask / reorder views (Xie et al., ICDE 2022)."""

    Config = CL4SRecConfig
    section = "cl4srec"

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        if len(batch.index) < 2:
            return None, {}
        s = self.settings
        # Drawn on the host, from the host's copy of the inputs (no wait for the device).
        views = two_views(batch.host_inputs, ratios={"crop": s.crop, "mask": s.mask,
                                                     "reorder": s.reorder},
                          mask_token=self.mask_id(encoder), generator=self.generator)
        z1, z2 = encode_last(encoder, *views, device=self.device)
        loss = nt_xent(z1, z2, tau=s.tau, similarity=s.similarity)
        return s.weight * loss, {"cl": loss.detach()}
