"""CL4SRec (Xie et al., ICDE 2022; docs/BASELINES.md sec. 2) and the plumbing its siblings share.

Per step: two augmented views of every instance of the batch (two DIFFERENT operators among
crop / mask / reorder, ``two_views``), one extra forward pass encodes both, and
    loss = rec(h) + weight * NTXent(z1, z2)     (tau 1, dot product; DuoRec repo defaults)
where z1, z2 are the encoder states at the last position of the two views.

Which instances are contrasted: every instance of the batch, by its last position. With
``prefixes`` (FMLP default) that is every prefix, as in the authors' code. With ``windows``
(SASRec default) it is each window's last position (one per user, plus the earlier windows of
sequences longer than max_len); the recommendation loss stays at every position.

The [mask] token. With ``mask_token = "row"`` (default: the CL4SRec paper, the DuoRec and
ReChorus code) a masked item becomes id num_items + 1, a learned input-only row of the item table
(``extra_tokens``; it is never scored). ``pad`` masks with the padding id 0, as MCLRec's code
does: a masked item becomes invisible to attention (SASRec) or zeroed (FMLP-Rec), and a FMLP-Rec
view whose last item is masked has a zero state at its last position.

Hyper-parameters are class attributes (listed in ``hyper``); a config section ``cfg.baseline``,
when it exists, overrides any of them whose value there is not None.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import ConfigError
from rclrec.data.augment import DUOREC_RATIOS, ICLREC_RATIOS, MCLREC_RATIOS, two_views
from rclrec.data.batches import TrainingInstances, trim_padding
from rclrec.data.dataset import PAD
from rclrec.data.split import LeaveOneOutSplit
from rclrec.losses.baselines import CL4SREC_TAU, CL4SREC_WEIGHT, nt_xent
from rclrec.methods.base import Batch, Method
from rclrec.models.encode import last_states

RATIOS = {"duorec": DUOREC_RATIOS, "mclrec": MCLREC_RATIOS, "iclrec": ICLREC_RATIOS}


class BaselineMethod(Method):
    """Shared plumbing of the contrastive baselines: settings, seeded augmentation, encoding.

    Subclasses list their hyper-parameters (class attributes) in ``hyper``.
    """

    hyper: tuple[str, ...] = ()
    section = "baseline"
    approximate = False  # True when the method is a documented stand-in, not the paper's model
    mask_token: str = "row"  # row (a [mask] row, id num_items + 1) | pad (id 0, MCLRec's code)

    def __init__(self, cfg, split: LeaveOneOutSplit, instances: TrainingInstances,
                 device: torch.device) -> None:
        super().__init__(cfg, split, instances, device)
        for name, value in self.resolved_hyper(cfg).items():
            setattr(self, name, value)
        # One generator per run for every augmentation (CPU: the views are drawn there and moved).
        self.generator = torch.Generator().manual_seed(int(cfg.train.seed) + 17)
        self.num_items = split.num_items

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        return cls.hyper

    @classmethod
    def resolved_hyper(cls, cfg) -> dict[str, object]:
        """The hyper-parameters a run of ``cfg`` trains with: the ``baseline`` section's value
        where it is set, the class default elsewhere (what a cell records and hashes, so a
        changed default re-keys the cells it changes)."""
        section = getattr(cfg, "baseline", None)
        values = {}
        for name in cls.hyper:
            value = getattr(section, name, None) if section is not None else None
            values[name] = getattr(cls, name) if value is None else value
        return values

    def settings(self) -> dict[str, object]:
        """The resolved hyper-parameters (for logs and tests)."""
        return {name: getattr(self, name) for name in self.hyper}

    @property
    def extra_tokens(self) -> int:
        """Input-only rows the encoder needs after the items: the [mask] row, if masked with it."""
        return int("mask_token" in self.hyper and self.mask_token == "row")

    def mask_id(self, encoder: nn.Module) -> int:
        if self.mask_token == "pad":
            return PAD
        if encoder.item_embedding.num_embeddings <= self.num_items + 1:
            raise ValueError("mask_token = row needs an encoder built with extra_tokens = 1 "
                             "(build_encoder(..., extra_tokens=method.extra_tokens))")
        return self.num_items + 1

    def item_scores(self, states: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """(P, D) -> (P, num_items) dot products with items 1..num_items."""
        return states @ encoder.item_table[1:].T

    def rows_tensor(self, rows: np.ndarray) -> torch.Tensor:
        """Left-padded inputs of training instances, trimmed to their longest (tensor)."""
        (inputs,) = trim_padding(self.instances.inputs[rows])
        return torch.from_numpy(inputs).to(self.device)


def last_targets(batch: Batch) -> torch.Tensor:
    """(B,) the target of each instance's last position (windows and prefixes alike)."""
    return batch.targets[:, -1]


def encode_last(encoder: nn.Module, *seqs: torch.Tensor, chunk: int = 256) -> list[torch.Tensor]:
    """Last-position states of several (B_k, L_k) left-padded batches.

    All rows are encoded together in length-sorted chunks, each trimmed to its longest row:
    views and partners are random rows of any length, and one batch padded to the longest
    costs several times the trimmed work (the encoder, not the item scores, dominates then).
    Padding does not change a row's states (masked in SASRec; FMLP-Rec pads to max_len itself).

    Returns:
        One (B_k, D) tensor per input batch.
    """
    width = max(s.shape[1] for s in seqs)
    joined = torch.cat([F.pad(s, (width - s.shape[1], 0), value=PAD) for s in seqs], 0)
    return list(last_states(encoder, joined, chunk).split([s.shape[0] for s in seqs], 0))


class CL4SRec(BaselineMethod):
    """Contrastive learning with crop / mask / reorder views (Xie et al., ICDE 2022)."""

    hyper = ("weight", "tau", "similarity", "ratios", "mask_token")
    weight: float = CL4SREC_WEIGHT  # lambda, DuoRec repo: 0.1
    tau: float = CL4SREC_TAU  # DuoRec repo: 1.0
    similarity: str = "dot"  # dot (authors) | cos
    ratios: str = "duorec"  # duorec (crop .6 mask .3 reorder .6) | mclrec | iclrec

    @classmethod
    def code_constants(cls, cfg) -> dict[str, object]:
        return {"ratios": RATIOS.get(cls.resolved_hyper(cfg)["ratios"])}

    def __init__(self, cfg, split, instances, device) -> None:
        super().__init__(cfg, split, instances, device)
        if self.ratios not in RATIOS:
            raise ConfigError(f"setting baseline.ratios must be one of {', '.join(RATIOS)}, "
                              f"got {self.ratios!r}")

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if len(batch.index) < 2:
            return None, {}
        v1, v2 = two_views(batch.inputs, ratios=RATIOS[self.ratios],
                           mask_token=self.mask_id(encoder), generator=self.generator)
        z1, z2 = encode_last(encoder, v1, v2)
        loss = nt_xent(z1, z2, tau=self.tau, similarity=self.similarity)
        return self.weight * loss, {"cl": float(loss.detach())}
