"""ContraRec (Wang et al., TOIS 2023; docs/BASELINES.md sec. 6): context-target and context-context.

Per step, two context views of every instance of the batch (``contrarec_view``: mask or
reorder with probability 1/2, fraction ~ Beta(3, 3)) are encoded in one extra pass, and
    loss = L_ctc + gamma * L_ccc(za, zb; tau 0.2)
L_ctc (context-target contrast, ReChorus ctc_temp = 1) with full item scores is tau x CE =
exactly the trainer's recommendation loss with ``train.loss = ce``, so this method returns only
gamma * L_ccc (SupCon over the 2B normalised views, positives = the views of instances with the
same last target, x tau as ReChorus). Defaults from ReChorus: gamma 1, ccc_temp 0.2.
"""

from __future__ import annotations

import torch
from torch import nn

from rclrec.data.augment import contrarec_view
from rclrec.losses.baselines import CONTRAREC_CCC_TAU, CONTRAREC_WEIGHT, contrarec_ccc_loss
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod, encode_last, last_targets


class ContraRec(BaselineMethod):
    """Context-target (the rec. loss) plus context-context contrast of two augmented views."""

    hyper = ("weight", "ccc_tau", "beta_a", "beta_b", "mask_token")
    weight: float = CONTRAREC_WEIGHT  # ReChorus --gamma 1
    ccc_tau: float = CONTRAREC_CCC_TAU  # ReChorus --ccc_temp 0.2
    beta_a: int = 3  # Beta(3, 3) augmentation fraction (ReChorus)
    beta_b: int = 3

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if len(batch.index) < 2:
            return None, {}
        token = self.mask_id(encoder)
        a = contrarec_view(batch.inputs, mask_token=token, beta_a=self.beta_a,
                           beta_b=self.beta_b, generator=self.generator)
        b = contrarec_view(batch.inputs, mask_token=token, beta_a=self.beta_a,
                           beta_b=self.beta_b, generator=self.generator)
        za, zb = encode_last(encoder, a, b)
        loss = contrarec_ccc_loss(za, zb, last_targets(batch), tau=self.ccc_tau)
        return self.weight * loss, {"ccc": float(loss.detach())}
