"""One pass over a block of scores on the CPU: how many items score above, and alike, each
target (numba). The torch ops it replaces make five passes and three temporary copies of the
block; this reads each score once, so a validation pass costs little more than its product."""

from __future__ import annotations

import numpy as np
from numba import njit

_I32 = np.int32


@njit(cache=True, nogil=True)
def count_above_and_alike(scores, first, targets, history, target_items, start, higher, alike):
    """Add to ``higher`` / ``alike`` each row's count of scores above / equal to its target.

    Args:
        scores: (B, W) float32 scores of items ``start .. start + W - 1``.
        first: the first column counted (1 where column 0 is the padding item, else 0).
        targets: (B,) each row's target score, from the same product as ``scores``.
        history: (B, H) int64 item ids taken back from the counts, each once however often it
            repeats; the padding id, ids outside the block and the row's target are ignored.
        target_items: (B,) int64 each row's target item id.
        start: item id of column 0.
        higher, alike: (B,) int64, added to in place.

    Returns:
        True when some counted score is NaN or infinite (the counts are then meaningless).
    """
    zero = np.float32(0.0)
    non_finite = False
    # Unsigned column indices: a signed index makes numba wrap negative ones around, which
    # LLVM cannot vectorise but as gathers. int32 sums (cast back after each add, since numba
    # widens int32 arithmetic to int64) give twice the lanes of int64 ones.
    width = np.uint64(scores.shape[1])
    taken = np.zeros(scores.shape[1], dtype=np.bool_)  # the columns taken back from this row
    for r in range(scores.shape[0]):
        t = targets[r]
        row = scores[r]
        above = _I32(0)
        equal = _I32(0)
        bad = _I32(0)
        for j in range(np.uint64(first), width):
            s = row[j]
            above = _I32(above + _I32(s > t))
            equal = _I32(equal + _I32(s == t))
            bad = _I32(bad | _I32((s - s) != zero))  # s - s is NaN exactly for NaN and +-inf
        if bad:
            non_finite = True
        for c in history[r]:
            j = c - start
            if j >= first and j < row.shape[0] and c > 0 and c != target_items[r] and not taken[j]:
                taken[j] = True
                above -= row[j] > t
                equal -= row[j] == t
        for c in history[r]:
            j = c - start
            if j >= 0 and j < row.shape[0]:
                taken[j] = False
        higher[r] += above
        alike[r] += equal
    return non_finite
