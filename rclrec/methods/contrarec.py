"""ContraRec (Wang et al., TOIS 2023; docs/BASELINES.md sec. 6): context-target and context-context.

Per step, two context views of every instance of the batch (``contrarec_view``: mask or
reorder with probability 1/2, fraction ~ Beta(3, 3)) are encoded in one extra pass, and
    loss = L_ctc + gamma * L_ccc(za, zb; tau 0.2)
L_ctc (context-target contrast, ReChorus ctc_temp = 1) with full item scores is tau x CE =
exactly the trainer's recommendation loss with ``train.loss = ce``, so this method returns only
gamma * L_ccc (SupCon over the 2B normalised views, positives = the views of instances with the
same last target, x tau as ReChorus).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import ConfigError, check_choice, check_finite
from rclrec.data.augment import Generator, as_tensor, back, mask, reorder, uniform
from rclrec.losses.baselines import check_pair, supervised_contrastive
from rclrec.methods.augmentation import (
    MASK_TOKENS,
    AugmentationMethod,
    encode_last,
    last_targets,
)
from rclrec.methods.base import Batch


@dataclass(frozen=True)
class ContraRecConfig:
    weight: float = 1.0  # (float) gamma, weight of the context-context contrast; ReChorus 1
    ccc_tau: float = 0.2  # (float) its temperature; ReChorus --ccc_temp 0.2
    beta_a: int = 3  # (int) views mask/reorder a Beta(a, b) fraction; ReChorus Beta(3, 3)
    beta_b: int = 3  # (int)
    mask_token: str = "row"  # (str) row (a [mask] row, ReChorus' id n_items) | pad (id 0)

    def __post_init__(self) -> None:
        check_finite(self, "contrarec")
        check_choice("contrarec.mask_token", self.mask_token, MASK_TOKENS)
        if self.beta_a < 1 or self.beta_b < 1:
            raise ConfigError("contrarec.beta_a and contrarec.beta_b must be >= 1")


def _beta_integer(a: int, b: int, size: int, generator: Generator,
                  device: torch.device) -> torch.Tensor:
    """Beta(a, b) samples for integer a, b >= 1: the a-th smallest of a + b - 1 uniforms.

    (Order statistics of uniforms are Beta distributed; this keeps every draw on ``generator``.)
    """
    u = uniform((size, a + b - 1), generator, device)
    return u.sort(1).values[:, a - 1]


def contrarec_view(seqs: torch.Tensor | np.ndarray, *, mask_token: int, beta_a: int = 3,
                   beta_b: int = 3, generator: Generator = None) -> torch.Tensor | np.ndarray:
    """One ContraRec context view (ReChorus ``ContraRec.Dataset.augment``; docs/BASELINES.md 6).

    Per row, with probability 1/2 mask, else reorder, with a fraction drawn per row from
    Beta(beta_a, beta_b) (ReChorus default Beta(3, 3)); counts are floor(ratio * n) as ``int()``
    truncates in ReChorus. Call twice for the two views (both may use the same operator).

    Args:
        seqs: (B, L) int64, left-padded with 0.
        mask_token: the [mask] id (ReChorus uses n_items, i.e. the id after the last item).
        beta_a: first Beta shape parameter (integer).
        beta_b: second Beta shape parameter (integer).
        generator: torch or numpy generator.

    Returns:
        (B, L) int64 of the same type and device as ``seqs``.
    """
    if int(beta_a) != beta_a or int(beta_b) != beta_b or beta_a < 1 or beta_b < 1:
        raise ValueError("beta_a and beta_b must be integers >= 1")
    x, was_numpy = as_tensor(seqs)
    B = x.shape[0]
    ratio = _beta_integer(int(beta_a), int(beta_b), B, generator, x.device)
    use_mask = uniform((B,), generator, x.device) < 0.5
    masked = mask(x, ratio, mask_token=mask_token, generator=generator)
    shuffled = reorder(x, ratio, generator=generator)
    out = torch.where(use_mask[:, None], masked, shuffled)
    return back(out, was_numpy)


def contrarec_ctc_loss(scores: torch.Tensor, targets: torch.Tensor | None = None,
                       tau: float = 1.0) -> torch.Tensor:
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


def contrarec_ccc_loss(z1: torch.Tensor, z2: torch.Tensor, targets: torch.Tensor,
                       tau: float = 0.2) -> torch.Tensor:
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
    check_pair(z1, z2)
    labels = torch.cat([targets, targets], 0)
    return tau * supervised_contrastive(torch.cat([z1, z2], 0), labels, tau, normalize=True)


class ContraRec(AugmentationMethod):
    """Context-target (the rec. loss) plus context-context contrast of two augmented views."""

    Config = ContraRecConfig
    section = "contrarec"

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        if len(batch.index) < 2:
            return None, {}
        s = self.settings
        token = self.mask_id(encoder)
        # Drawn on the host, from the host's copy of the inputs (no wait for the device).
        a, b = (contrarec_view(batch.host_inputs, mask_token=token, beta_a=s.beta_a,
                               beta_b=s.beta_b, generator=self.generator) for _ in range(2))
        za, zb = encode_last(encoder, a, b, device=self.device)
        loss = contrarec_ccc_loss(za, zb, last_targets(batch), tau=s.ccc_tau)
        return s.weight * loss, {"ccc": loss.detach()}
