"""Training instances and padded evaluation inputs.

Two ways to turn training sequences into (input, target) pairs (docs/METHOD.md section 2):

- ``windows``: one instance per user holding its whole training sequence; a causal encoder is
  trained at every position in one pass. A sequence longer than max_len + 1 is cut into
  further windows (from the end backwards) so its earlier targets are not lost.
- ``prefixes``: every prefix of a training sequence is its own instance with one target at the
  last position (RecBole / DuoRec). Needed by encoders that are not causal (FMLP-Rec).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rclrec.data.dataset import PAD, DataError


def left_pad(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Keep the most recent ``max_len`` items of each sequence and pad on the left with 0.

    Returns:
        (N, max_len) int64.
    """
    return FlatHistories(seqs).left_pad(width=max_len)


class FlatHistories:
    """Sequences of item ids stored end to end, left-padded a chunk of rows at a time without a
    Python loop over the sequences (ranking pads tens of thousands of them every epoch)."""

    def __init__(self, seqs: list[np.ndarray]):
        self.lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        self.ends = np.cumsum(self.lengths)
        self.items = (np.concatenate(seqs).astype(np.int64, copy=False) if len(seqs)
                      else np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    def left_pad(self, rows: np.ndarray | None = None, width: int | None = None) -> np.ndarray:
        """(len(rows), width) int64: the last ``width`` items of each row's sequence, padded
        on the left with PAD.

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


@dataclass
class TrainingInstances:
    """Arrays of training instances (all row-aligned).

    Attributes:
        inputs: (N, L) left-padded input items.
        targets: (N, L) next item at each position, 0 where there is none (windows), or (N, 1)
            with the single target of the last position (prefixes).
        users: (N,) user row of each instance.
        whole: (N,) True for the instance whose last position predicts the user's final training
            item: its last state is the user's representation for contrastive learning.
    """

    inputs: np.ndarray
    targets: np.ndarray
    users: np.ndarray
    whole: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def window_instances(train: list[np.ndarray], max_len: int) -> TrainingInstances:
    """Whole-sequence instances: targets at every position; long sequences split into windows."""
    inputs, targets, users, whole = [], [], [], []
    for u, seq in enumerate(train):
        end = len(seq)
        first = True
        while end >= 2:  # a window needs one input item and one target
            start = max(0, end - max_len - 1)
            window = seq[start:end]
            inputs.append(window[:-1])
            targets.append(window[1:])
            users.append(u)
            whole.append(first)
            first = False
            end = start + 1  # the next window ends with the first input item of this one
            if start == 0:
                break
    if not inputs:
        raise DataError("no training sequence has two or more items")
    return TrainingInstances(
        inputs=left_pad(inputs, max_len),
        targets=left_pad(targets, max_len),
        users=np.array(users, dtype=np.int64),
        whole=np.array(whole, dtype=bool),
    )


def prefix_instances(train: list[np.ndarray], max_len: int) -> TrainingInstances:
    """Every prefix of every training sequence, with the next item as its target."""
    lengths = np.array([len(s) for s in train])
    counts = np.maximum(lengths - 1, 0)
    n = int(counts.sum())
    inputs = np.zeros((n, max_len), dtype=np.int64)
    targets = np.zeros((n, 1), dtype=np.int64)
    users = np.repeat(np.arange(len(train)), counts)
    whole = np.zeros(n, dtype=bool)
    row = 0
    for seq in train:
        for t in range(1, len(seq)):
            prefix = seq[max(0, t - max_len):t]
            inputs[row, max_len - len(prefix):] = prefix
            targets[row, 0] = seq[t]
            whole[row] = t == len(seq) - 1
            row += 1
    return TrainingInstances(inputs, targets, users, whole)


def prefix_arrays(train: list[np.ndarray], users: np.ndarray, ends: np.ndarray, max_len: int,
                  every_position: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of arbitrary prefixes, as the training instances lay them out.

    Prefix ``(u, t)`` has input ``train[u][:t]`` (its last ``max_len`` items) and target
    ``train[u][t]``; ``t = len(train[u]) - 1`` is the user's whole training sequence, and gives
    the same row as its ``whole`` instance of :func:`window_instances` (``every_position``:
    targets at every position) or :func:`prefix_instances` (the last position's only).

    Returns:
        inputs (n, max_len) left-padded, targets (n, max_len) or (n, 1).
    """
    inputs = np.zeros((len(users), max_len), dtype=np.int64)
    targets = np.zeros((len(users), max_len if every_position else 1), dtype=np.int64)
    for row, (u, t) in enumerate(zip(users, ends, strict=True)):
        window = train[u][max(0, t - max_len):t + 1]
        inputs[row, max_len - len(window) + 1:] = window[:-1]
        if every_position:
            targets[row, max_len - len(window) + 1:] = window[1:]
        else:
            targets[row, 0] = window[-1]
    return inputs, targets


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                pool: int = 32) -> list[np.ndarray]:
    """A shuffled partition of the instances into batches of similar length.

    Instances are shuffled, cut into pools of ``pool`` batches, sorted by length inside each
    pool, batched, and the batches shuffled ("sortish" bucketing as in fairseq). Each batch is
    then trimmed to its longest sequence, which on short-sequence data (Beauty: median 6 items
    in a window of 50) removes most of the padding work while batches stay random.
    """
    perm = rng.permutation(len(lengths))
    batches = []
    span = batch_size * pool
    for start in range(0, len(perm), span):
        chunk = perm[start:start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def trim_padding(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop the leading columns that are padding in every row of the first array."""
    real = arrays[0] != PAD
    if not real.any():
        return arrays
    first = int(np.argmax(real.any(axis=0)))
    return tuple(a[:, first:] if a.shape[1] == arrays[0].shape[1] else a for a in arrays)


def length_sorted_chunks(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """Row indices sorted by length (stable), cut into chunks of ``size``: rows of any length
    are encoded chunk by chunk, each trimmed to its longest row, not padded to the longest."""
    order = np.argsort(lengths, kind="stable")
    return [order[start:start + size] for start in range(0, len(order), size)]


def cost_balanced_chunks(lengths: np.ndarray, call_cost: float) -> list[np.ndarray]:
    """Row indices sorted by length (stable), cut where a cut pays for itself.

    Each chunk is padded to its longest row, so it costs ``rows x width`` positions, plus
    ``call_cost`` positions for the fixed cost of one more encoder call. Long-tailed lengths
    (a few long rows among many short ones) make fixed-size chunks mostly padding; the cuts
    here minimise the total cost, by dynamic programming over the distinct lengths (a chunk
    never needs to split rows of equal length).
    """
    order = np.argsort(lengths, kind="stable")
    if len(order) == 0:
        return []
    widths, counts = np.unique(np.asarray(lengths)[order], return_counts=True)
    ends = np.cumsum(counts)  # rows up to and including each distinct length
    starts = ends - counts
    best = np.zeros(len(widths) + 1)  # best[j]: cost of the rows of the first j lengths
    cut = np.zeros(len(widths) + 1, dtype=np.int64)
    for j in range(1, len(widths) + 1):
        # A last chunk over lengths i..j-1: rows starts[i]..ends[j-1], padded to widths[j-1].
        total = best[:j] + (ends[j - 1] - starts[:j]) * widths[j - 1] + call_cost
        cut[j] = int(np.argmin(total))
        best[j] = total[cut[j]]
    chunks, j = [], len(widths)
    while j > 0:
        chunks.append(order[starts[cut[j]]:ends[j - 1]])
        j = cut[j]
    return chunks[::-1]


def real_length(inputs: np.ndarray) -> np.ndarray:
    return (inputs != PAD).sum(axis=1)
