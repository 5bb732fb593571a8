"""Last-position states of many sequences: the one chunked encoding loop.

Ranking, serving, the embedding analysis and the contrastive methods all need ``h``, the
encoder's state at each sequence's last position, for more sequences than one forward pass
should hold. They all go through :func:`iter_last_states`: rows sorted by length, cut into
chunks, each chunk trimmed to its longest row. Short-sequence data (Beauty: a median of 6
items in a window of 50) then costs a fraction of the work of padding every row to the longest.

Padding does not change a row's state in exact arithmetic (it is masked in SASRec; FMLP-Rec
pads to max_len itself), but a different padding width may change SASRec's last float bits;
a row's chunk, hence its width, depends only on the lengths and the chunk size, so results
are reproducible call to call.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from rclrec.data.batches import left_pad, length_sorted_chunks
from rclrec.data.dataset import PAD


def iter_last_states(encoder: nn.Module, seqs: torch.Tensor, chunk: int,
                     device: torch.device | str | None = None
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Last-position states of left-padded sequences, one length-sorted chunk at a time.

    Args:
        encoder: any rclrec encoder (it has ``last_state``).
        seqs: (N, L) item ids, 0 = padding on the left.
        chunk: rows per forward pass.
        device: where each chunk is encoded [``seqs``' device].

    Yields:
        rows (C,) int64 indices into ``seqs`` and their states (C, D). Autograd is kept: the
        caller decides on ``torch.no_grad``.
    """
    width = seqs.shape[1]
    lengths = (seqs != PAD).sum(1).cpu().numpy()
    device = seqs.device if device is None else device
    for rows in length_sorted_chunks(lengths, chunk):
        longest = max(int(lengths[rows].max()), 1)  # an empty row keeps its last column
        window = seqs[torch.from_numpy(rows).to(seqs.device), width - longest:]
        yield rows, encoder.last_state(window.to(device))


def last_states(encoder: nn.Module, seqs: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N, D) last-position states of (N, L) left-padded sequences, in their input order.

    Autograd is kept (training uses it for views and positives); one gather puts the rows
    back in order, as a select per chunk would cost a zero-filled gradient each.
    """
    if len(seqs) == 0:
        return encoder.item_table.new_zeros((0, encoder.item_table.shape[1]))
    rows, parts = zip(*iter_last_states(encoder, seqs, chunk), strict=True)
    order = torch.from_numpy(np.argsort(np.concatenate(rows))).to(parts[0].device)
    return torch.cat(parts)[order]


@torch.no_grad()
def encode_histories(encoder: nn.Module, histories: list[np.ndarray], max_len: int, *,
                     device: torch.device | str = "cpu", chunk: int = 1024) -> torch.Tensor:
    """(N, D) states after each history (its most recent ``max_len`` items), in eval mode
    and without autograd; the encoder's training mode is restored afterwards."""
    was_training = encoder.training
    encoder.eval()
    try:
        return last_states(encoder, torch.from_numpy(left_pad(histories, max_len)).to(device),
                           chunk)
    finally:
        encoder.train(was_training)
