"""Last-position states of many sequences: the one chunked encoding loop.

Ranking, serving, the embedding analysis and the contrastive methods all need ``h``, the
encoder's state at each sequence's last position, for more sequences than one forward pass
should hold. They all go through :func:`chunk_windows` (by :func:`iter_last_states`, or
directly where every position's state is needed: RCL's positives): rows sorted by length, cut
into chunks (of a fixed number of rows, or by a plan such as ``cost_balanced_chunks``), each
chunk trimmed to its longest row. Data whose sequences are mostly much shorter than the
window (docs/USAGE.md gives Beauty's lengths) then costs a fraction of the work of padding every
row to the longest.

Padding does not change a row's state in exact arithmetic (it is masked in SASRec; FMLP-Rec
pads to max_len itself), but a different padding width may change SASRec's last float bits;
a row's chunk, hence its width, depends only on the lengths and the chunking, so results
are reproducible call to call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from rclrec.data.batches import left_pad, length_sorted_chunks
from rclrec.data.dataset import PAD
from rclrec.devices import to_device

# How rows are cut into chunks: rows per forward pass, or a plan from the rows' lengths to the
# chunks' row indices (e.g. ``cost_balanced_chunks``), each chunk sorted by length.
Chunking = int | Callable[[np.ndarray], list[np.ndarray]]


def chunk_windows(seqs: torch.Tensor | np.ndarray, chunk: Chunking,
                  device: torch.device | str | None = None
                  ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Left-padded sequences in chunks of rows, each trimmed to its longest row.

    Args:
        seqs: (N, L) item ids, 0 = padding on the left. A numpy array (the rows still on the
            host) finds the lengths there and copies each chunk without waiting for the device.
        chunk: rows per chunk, cut from the rows sorted by length, or a plan (``Chunking``).
        device: where each chunk goes [``seqs``' device; the CPU for a numpy array].

    Yields:
        rows (C,) int64 indices into ``seqs`` and their (C, W) window on ``device`` (copied
        with ``rclrec.devices.to_device``: no wait for a GPU).
    """
    width = seqs.shape[1]
    on_host = isinstance(seqs, np.ndarray)
    if on_host:
        lengths = (seqs != PAD).sum(1)
        device = "cpu" if device is None else device
    else:
        lengths = (seqs != PAD).sum(1).cpu().numpy()
        device = seqs.device if device is None else device
    plan = length_sorted_chunks(lengths, chunk) if isinstance(chunk, int) else chunk(lengths)
    for rows in plan:
        longest = max(int(lengths[rows].max()), 1)  # an empty row keeps its last column
        if on_host:
            window = torch.from_numpy(seqs[rows, width - longest:])
        else:
            window = seqs[to_device(rows, seqs.device), width - longest:]
        yield rows, to_device(window, device)


def iter_last_states(encoder: nn.Module, seqs: torch.Tensor | np.ndarray, chunk: Chunking,
                     device: torch.device | str | None = None, positions: int | None = None
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Last-position states of left-padded sequences, one chunk (``chunk_windows``) at a time.

    Args:
        encoder: any rclrec encoder (it has ``last_state``).
        seqs: (N, L) item ids, 0 = padding on the left (tensor or numpy array).
        chunk: rows per forward pass, or a plan (``Chunking``).
        device: where each chunk is encoded [``seqs``' device; the encoder's for a numpy
            array].
        positions: a chunk of more positions (rows x width) than this is encoded in pieces of
            about this many, all at the chunk's width [whole chunks]: the same states (see
            ``row_pieces``), with activations small enough to stay in a CPU's caches.

    Yields:
        rows (C,) int64 indices into ``seqs`` and their states (C, D), per chunk or piece.
        Autograd is kept: the caller decides on ``torch.no_grad``.
    """
    if device is None and isinstance(seqs, np.ndarray):
        device = encoder.item_table.device
    for rows, piece in iter_pieces(seqs, chunk, device, positions):
        yield rows, encoder.last_state(piece)


def iter_pieces(seqs: torch.Tensor | np.ndarray, chunk: Chunking,
                device: torch.device | str | None = None, positions: int | None = None
                ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """What :func:`iter_last_states` encodes: the rows and windows of ``chunk_windows``, each
    cut by ``row_pieces`` (arguments as there), for callers that encode them elsewhere."""
    for rows, window in chunk_windows(seqs, chunk, device):
        yield from row_pieces(rows, window, positions)


# Rows a piece keeps at least: a product of one or two rows may round differently from a
# larger one (a different BLAS path), one of a few rows more does not.
MIN_PIECE_ROWS = 16


def row_pieces(rows: np.ndarray, window: torch.Tensor, positions: int | None
               ) -> list[tuple[np.ndarray, torch.Tensor]]:
    """``rows`` and their ``window`` cut into near-equal pieces of rows of about ``positions``
    positions each (of at least ``MIN_PIECE_ROWS`` rows; whole when ``positions`` is None).

    A row's state depends on its window's width, not on the other rows of its call: the
    encoders' operations are row by row (the products' rows included, at a few rows or more),
    so pieces at the chunk's own width give its states bit for bit.
    """
    count = 1 if positions is None else min(-(-window.numel() // positions),
                                            len(rows) // MIN_PIECE_ROWS)
    if count <= 1:
        return [(rows, window)]
    return list(zip(np.array_split(rows, count), window.tensor_split(count), strict=True))


def last_states(encoder: nn.Module, seqs: torch.Tensor | np.ndarray, chunk: Chunking = 256,
                device: torch.device | str | None = None) -> torch.Tensor:
    """(N, D) last-position states of (N, L) left-padded sequences, in their input order.

    Autograd is kept (training uses it for views and positives); one gather puts the rows
    back in order, as a select per chunk would cost a zero-filled gradient each.
    """
    if len(seqs) == 0:
        return encoder.item_table.new_zeros((0, encoder.item_table.shape[1]))
    rows, parts = zip(*iter_last_states(encoder, seqs, chunk, device), strict=True)
    order = np.argsort(np.concatenate(rows))
    return torch.cat(parts)[to_device(order, parts[0].device)]


@torch.no_grad()
def encode_histories(encoder: nn.Module, histories: list[np.ndarray], max_len: int, *,
                     device: torch.device | str | None = None, chunk: int = 1024
                     ) -> torch.Tensor:
    """(N, D) states after each history (its most recent ``max_len`` items), in eval mode
    and without autograd, encoded on ``device`` [the encoder's]; the encoder's training mode
    is restored afterwards."""
    was_training = encoder.training
    encoder.eval()
    try:
        return last_states(encoder, left_pad(histories, max_len), chunk, device)
    finally:
        encoder.train(was_training)
