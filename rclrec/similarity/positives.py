"""Strong and weak positive samplers (docs/METHOD.md section 3, Eq. 5 and 10) and pair look-ups.

Both samplers are vectorized over a batch of centre sequences and use their own seeded
``numpy.random.Generator``, so a run is reproducible; a centre without a positive gets -1.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rclrec.similarity.index import SimilarityIndex


class StrongSampler:
    """SP_u (Eq. 5): the other sequences with the same target; one drawn uniformly per call.

    Args:
        targets: (N,) int target of each sequence.
        seed: seed of the generator (or pass ``rng``).
        rng: a generator to use instead of ``seed``.
    """

    def __init__(self, targets: np.ndarray, seed: int = 0,
                 rng: np.random.Generator | None = None) -> None:
        targets = np.asarray(targets, dtype=np.int64)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.order = np.argsort(targets, kind="stable")  # members of a group are contiguous
        sorted_t = targets[self.order]
        new = np.r_[True, sorted_t[1:] != sorted_t[:-1]]
        gid = np.cumsum(new) - 1
        gstart = np.flatnonzero(new)
        gsize = np.diff(np.r_[gstart, len(targets)])
        n = len(targets)
        self.group_start = np.empty(n, dtype=np.int64)
        self.group_size = np.empty(n, dtype=np.int64)
        self.position = np.empty(n, dtype=np.int64)  # own position inside its group
        self.group_start[self.order] = gstart[gid]
        self.group_size[self.order] = gsize[gid]
        self.position[self.order] = np.arange(n) - gstart[gid]

    def counts(self) -> np.ndarray:
        """(N,) |SP_u|."""
        return self.group_size - 1

    def sample(self, centres: np.ndarray) -> np.ndarray:
        """One strong positive per centre.

        Args:
            centres: (B,) int sequence ids.

        Returns:
            (B,) int64 ids of other sequences with the same target, -1 where SP_u is empty.
        """
        centres = np.asarray(centres, dtype=np.int64)
        others = self.group_size[centres] - 1
        j = (self.rng.random(len(centres)) * np.maximum(others, 1)).astype(np.int64)
        j = np.minimum(j, np.maximum(others - 1, 0))
        j = j + (j >= self.position[centres])  # skip the centre itself
        pick = self.order[np.minimum(self.group_start[centres] + j, len(self.order) - 1)]
        return np.where(others > 0, pick, -1)


class WeakSampler:
    """WP_u: one weak positive drawn with probability s_ub / sum_c s_uc (Eq. 10).

    Args:
        index: the weak-positive index.
        seed: seed of the generator (or pass ``rng``).
        rng: a generator to use instead of ``seed``.
    """

    def __init__(self, index: SimilarityIndex, seed: int = 0,
                 rng: np.random.Generator | None = None) -> None:
        self.index = index
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        # cumulative weights over the whole CSR (float64), row totals from differences
        self.cum = np.concatenate([[0.0], np.cumsum(index.scores, dtype=np.float64)])

    def sample(self, centres: np.ndarray) -> np.ndarray:
        """One weak positive per centre.

        Args:
            centres: (B,) int sequence ids.

        Returns:
            (B,) int64 neighbour ids, -1 where WP_u is empty.
        """
        centres = np.asarray(centres, dtype=np.int64)
        lo = self.index.indptr[centres]
        hi = self.index.indptr[centres + 1]
        base, total = self.cum[lo], self.cum[hi] - self.cum[lo]
        u = base + self.rng.random(len(centres)) * total
        pos = np.searchsorted(self.cum, u, side="right") - 1
        pos = np.clip(pos, lo, np.maximum(hi - 1, lo))  # float edge cases stay inside the row
        ids = self.index.indices[np.minimum(pos, max(len(self.index.indices) - 1, 0))] if len(
            self.index.indices) else np.zeros(len(centres), dtype=np.int64)
        return np.where(hi > lo, ids.astype(np.int64), -1)


def pair_similarity(index: SimilarityIndex, rows: np.ndarray, cols: np.ndarray,
                    symmetric: bool = False) -> np.ndarray:
    """Stored similarities s(rows[b], cols[c]) as a dense matrix (0 where not stored).

    The weighted loss (Eq. 16) needs s_uc for every centre u and every member c of the batch.

    Args:
        index: the weak-positive index.
        rows: (B,) int centre ids.
        cols: (C,) int member ids (-1 entries give 0).
        symmetric: also use s(c, u) when only c lists u (max of the two).

    Returns:
        (B, C) float32.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    valid = cols >= 0
    safe = np.where(valid, cols, 0)
    out = np.zeros((len(rows), len(cols)), dtype=np.float32)
    if len(rows) and len(cols):
        out = _rows_csr(index, np.maximum(rows, 0))[:, safe].toarray().astype(np.float32)
        if symmetric:
            back = _rows_csr(index, safe)[:, np.maximum(rows, 0)].toarray().T
            out = np.maximum(out, back)
        out[:, ~valid] = 0
        out[rows < 0] = 0
    return out


def _rows_csr(index: SimilarityIndex, rows: np.ndarray) -> sp.csr_matrix:
    """(len(rows), N) CSR holding the given rows of the index (no O(nnz) copy)."""
    lo, hi = index.indptr[rows], index.indptr[rows + 1]
    deg = hi - lo
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(deg, out=indptr[1:])
    pos = np.repeat(lo - indptr[:-1], deg) + np.arange(indptr[-1])
    return sp.csr_matrix((index.scores[pos], index.indices[pos], indptr),
                         shape=(len(rows), index.num_rows))
