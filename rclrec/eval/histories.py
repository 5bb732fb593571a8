"""The users' input sequences in one flat array, left-padded a chunk of rows at a time.

Ranking needs each user's window (the encoder's input) and whole history (the items left out
of the ranking) as left-padded matrices; a Python loop over tens of thousands of sequences
per validation pass costs more than the few array operations that do it here.
"""

from __future__ import annotations

import numpy as np

from rclrec.data.dataset import PAD


class FlatHistories:
    """Sequences of item ids, stored end to end (``data.batches.left_pad``, vectorised)."""

    def __init__(self, seqs: list[np.ndarray]):
        self.lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        self.ends = np.cumsum(self.lengths)
        self.items = (np.concatenate(seqs).astype(np.int64, copy=False) if len(seqs)
                      else np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    def left_pad(self, rows: np.ndarray | None = None, width: int | None = None) -> np.ndarray:
        """(len(rows), width) int64: the last ``width`` items of each row's sequence, padded
        on the left with PAD, as ``left_pad([seqs[r] for r in rows], width)`` gives them.

        Args:
            rows: row indices [all, in order].
            width: columns [the longest of the rows' sequences, at least 1].
        """
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        if width is None:
            width = max(int(lengths.max(initial=0)), 1)
        keep = np.minimum(lengths, width)
        out = np.full((len(rows), width), PAD, dtype=np.int64)
        row = np.repeat(np.arange(len(rows)), keep)
        # Position of each kept item within its row's kept items: 0 .. keep - 1.
        within = np.arange(int(keep.sum())) - np.repeat(np.cumsum(keep) - keep, keep)
        out[row, width - keep[row] + within] = self.items[self.ends[rows][row] - keep[row]
                                                          + within]
        return out
