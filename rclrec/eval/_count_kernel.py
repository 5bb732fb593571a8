"""One pass over a block of scores on the CPU: how many items score above, and alike, each
target (numba). The torch ops it replaces make five passes and three temporary copies of the
block; this reads each score once, so a validation pass costs little more than its product."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def count_above_and_alike(scores, first, targets, columns, start, higher, alike):
    """Add to ``higher`` / ``alike`` each row's count of scores above / equal to its target.

    Args:
        scores: (B, W) float32 scores of items ``start .. start + W - 1``.
        first: the first column counted (1 where column 0 is the padding item, else 0).
        targets: (B,) each row's target score, from the same product as ``scores``.
        columns: (B, H) int64 item ids taken back from the counts (a row's history but its
            target); ids outside the block and the padding id are ignored.
        start: item id of column 0.
        higher, alike: (B,) int64, added to in place.

    Returns:
        True when some counted score is NaN or infinite (the counts are then meaningless).
    """
    zero = np.float32(0.0)
    non_finite = False
    for r in range(scores.shape[0]):
        t = targets[r]
        row = scores[r]
        # Integer sums of comparisons vectorise; s - s is NaN exactly for NaN and +-inf.
        above = np.int32(0)
        equal = np.int32(0)
        bad = np.int32(0)
        for j in range(first, row.shape[0]):
            s = row[j]
            above += np.int32(s > t)
            equal += np.int32(s == t)
            bad += np.int32((s - s) != zero)
        if bad:
            non_finite = True
        for c in columns[r]:
            j = c - start
            if j >= first and j < row.shape[0] and c > 0:
                above -= row[j] > t
                equal -= row[j] == t
        higher[r] += above
        alike[r] += equal
    return non_finite
