"""The plumbing the contrastive baselines share: seeded views, the [mask] row, encoding.

Which instances a baseline contrasts: every instance of the batch, by its last position. With
``prefixes`` (FMLP default) that is every prefix, as in the authors' code. With ``windows``
(SASRec default) it is each window's last position (one per user, plus the earlier windows of
sequences longer than max_len); the recommendation loss stays at every position.

The [mask] token. A method whose section has ``mask_token = "row"`` (default: the CL4SRec paper,
the DuoRec and ReChorus code) masks an item as id num_items + 1, a learned input-only row of the
item table (``extra_tokens``; it is never scored). ``pad`` masks with the padding id 0, as
MCLRec's code does: a masked item becomes invisible to attention (SASRec) or zeroed (FMLP-Rec),
and a FMLP-Rec view whose last item is masked has a zero state at its last position.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rclrec.data.batches import TrainingInstances, trim_padding
from rclrec.data.dataset import PAD
from rclrec.data.split import LeaveOneOutSplit
from rclrec.methods.base import Batch, Method
from rclrec.models.encode import last_states

MASK_TOKENS = ("row", "pad")  # the choices of a section's mask_token setting


class AugmentationMethod(Method):
    """A contrastive baseline: its own seeded generator for views, the [mask] row, encoding."""

    approximate = False  # True when the method is a documented stand-in, not the paper's model

    def __init__(self, cfg, split: LeaveOneOutSplit, instances: TrainingInstances,
                 device: torch.device, item_ids: list[str] | None = None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        # One generator per run for every augmentation (CPU: the views are drawn there and moved).
        self.generator = torch.Generator().manual_seed(int(cfg.train.seed) + 17)
        self.num_items = split.num_items

    @property
    def extra_tokens(self) -> int:
        """Input-only rows the encoder needs after the items: the [mask] row, if masked with it."""
        return int(getattr(self.settings, "mask_token", None) == "row")

    def mask_id(self, encoder: nn.Module) -> int:
        if self.settings.mask_token == "pad":
            return PAD
        if encoder.item_embedding.num_embeddings <= self.num_items + 1:
            raise ValueError("mask_token = row needs an encoder built with extra_tokens = 1 "
                             "(build_encoder(..., extra_tokens=method.extra_tokens))")
        return self.num_items + 1

    def item_scores(self, states: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """(P, D) -> (P, num_items) dot products with items 1..num_items."""
        return states @ encoder.item_table[1:].T

    def rows_inputs(self, rows: np.ndarray) -> np.ndarray:
        """Left-padded inputs of training instances, trimmed to their longest."""
        (inputs,) = trim_padding(self.instances.inputs[rows])
        return inputs


def last_targets(batch: Batch) -> torch.Tensor:
    """(B,) the target of each instance's last position (windows and prefixes alike)."""
    return batch.targets[:, -1]


def encode_last(encoder: nn.Module, *seqs: np.ndarray | torch.Tensor, chunk: int = 256,
                device: torch.device | None = None) -> list[torch.Tensor]:
    """Last-position states of several (B_k, L_k) left-padded batches, on ``device`` [that of
    the tensors; the encoder's for numpy arrays, whose chunks are found on the host: no device
    read].

    All rows are encoded together in length-sorted chunks, each trimmed to its longest row:
    views and partners are random rows of any length, and one batch padded to the longest
    costs several times the trimmed work (the encoder, not the item scores, dominates then).
    Padding does not change a row's states (masked in SASRec; FMLP-Rec pads to max_len itself).

    Returns:
        One (B_k, D) tensor per input batch.
    """
    width = max(s.shape[1] for s in seqs)
    if all(isinstance(s, np.ndarray) for s in seqs):
        joined = np.concatenate([np.pad(s, ((0, 0), (width - s.shape[1], 0)),
                                        constant_values=PAD) for s in seqs])
    else:
        joined = torch.cat([F.pad(s, (width - s.shape[1], 0), value=PAD) for s in seqs], 0)
    states = last_states(encoder, joined, chunk, device)
    return list(states.split([s.shape[0] for s in seqs], 0))
