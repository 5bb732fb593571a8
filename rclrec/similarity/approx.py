"""Approximate candidates for jaccard / ngram at very large N: MinHash LSH, exact re-scoring.

Each sequence's set (items or n-grams) gets ``bands * rows_per_band`` MinHash values
(``min_x (a_h x + b_h) mod (2^31 - 1)``, vectorized over all sets with ``np.minimum.reduceat``).
Two sequences become candidates when all ``rows_per_band`` values of some band agree; that
happens with probability ``1 - (1 - J^r)^b`` for Jaccard J. Candidates are then scored with the
exact Jaccard, so precision is 1 and only recall is lost. Buckets larger than ``max_bucket``
(sets made of very popular items) are cut into random chunks of ``max_bucket`` so a block's
work stays bounded. The result plugs into the same selection as the exact blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from rclrec.similarity.measures import ScoreBlock, check_metric, incidence, row_blocks

PRIME = (1 << 31) - 1


def minhash_signatures(a: sp.csr_matrix, num_hashes: int, seed: int = 0) -> np.ndarray:
    """(N, H) int64 MinHash signatures of the rows of a binary CSR matrix (empty rows: -1-i)."""
    rng = np.random.default_rng(seed)
    coef = rng.integers(1, PRIME, size=num_hashes)
    off = rng.integers(0, PRIME, size=num_hashes)
    n = a.shape[0]
    nonempty = np.diff(a.indptr) > 0
    starts = a.indptr[:-1][nonempty]
    ids = a.indices.astype(np.int64)
    sig = np.empty((n, num_hashes), dtype=np.int64)
    for h in range(num_hashes):
        hv = (coef[h] * ids + off[h]) % PRIME
        col = np.full(n, -1, dtype=np.int64)
        if len(hv):
            col[nonempty] = np.minimum.reduceat(hv, starts)
        sig[:, h] = col
    empty = np.flatnonzero(~nonempty)
    sig[empty] = -1 - empty[:, None]  # unique values: an empty set is nobody's candidate
    return sig


def _band_buckets(keys: np.ndarray, max_bucket: int, rng: np.random.Generator):
    """Group rows by key; returns (order, bucket_of_row, bucket_start, bucket_size)."""
    n = len(keys)
    # random tie order inside a key so that cutting a large bucket into chunks is unbiased
    order = np.lexsort((rng.random(n), keys))
    sk = keys[order]
    new = np.r_[True, sk[1:] != sk[:-1]]
    gid = np.cumsum(new) - 1
    gstart = np.flatnonzero(new)
    pos_in = np.arange(n) - gstart[gid]
    chunk = pos_in // max_bucket  # large buckets -> consecutive chunks of max_bucket
    new2 = new | np.r_[True, chunk[1:] != chunk[:-1]]
    bid = np.cumsum(new2) - 1
    bstart = np.flatnonzero(new2)
    bsize = np.diff(np.r_[bstart, n])
    bucket_of_row = np.empty(n, dtype=np.int64)
    bucket_of_row[order] = bid
    return order, bucket_of_row, bstart, bsize


def minhash_blocks(inputs: Sequence[np.ndarray], metric: str, *, params: dict | None = None,
                   bands: int = 32, rows_per_band: int = 1, max_bucket: int = 200,
                   seed: int = 0, block_entries: int = 8_000_000,
                   chunk_pairs: int = 2_000_000) -> Iterator[ScoreBlock]:
    """Candidate pairs from MinHash LSH, scored with the exact Jaccard, in row blocks.

    Args:
        inputs: N int arrays.
        metric: "jaccard" or "ngram".
        params: {"n": 2} for ngram.
        bands, rows_per_band: LSH shape (more bands: higher recall, more candidates).
        max_bucket: chunk size for large buckets.
        seed: hash functions and bucket chunking.
        block_entries: bound on candidate pairs per block.
        chunk_pairs: pairs scored at once.

    Yields:
        :class:`ScoreBlock` with exact Jaccard scores of the candidate pairs.
    """
    params = check_metric(metric, params)
    a = incidence(inputs, params.get("n", 1) if metric == "ngram" else 1)
    n = a.shape[0]
    sizes = np.diff(a.indptr).astype(np.float64)
    sig = minhash_signatures(a, bands * rows_per_band, seed)
    rng = np.random.default_rng(seed + 1)
    tables = []
    cost = np.zeros(n, dtype=np.int64)
    for band in range(bands):
        cols = sig[:, band * rows_per_band:(band + 1) * rows_per_band]
        key = cols[:, 0].copy()
        for j in range(1, rows_per_band):  # hash-combine; collisions only add candidates
            key = key * np.int64(1_000_003) + cols[:, j]
        t = _band_buckets(key, max_bucket, rng)
        tables.append(t)
        cost += t[3][t[1]]
    for start, stop in row_blocks(cost, block_entries):
        rows_all, cols_all = [], []
        local = np.arange(start, stop)
        for order, bucket_of_row, bstart, bsize in tables:
            b = bucket_of_row[local]
            size = bsize[b]
            rows = np.repeat(local, size)
            first = np.repeat(bstart[b], size)
            offs = np.arange(len(rows)) - np.repeat(np.cumsum(size) - size, size)
            rows_all.append(rows)
            cols_all.append(order[first + offs])
        rows = np.concatenate(rows_all)
        cols = np.concatenate(cols_all)
        key = np.unique((rows - start) * n + cols)
        rows, cols = key // n + start, key % n
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
        scores = _exact_jaccard(a, sizes, rows, cols, chunk_pairs)
        keep = scores > 0
        yield ScoreBlock(start, stop, rows[keep], cols[keep], scores[keep])


def _exact_jaccard(a: sp.csr_matrix, sizes: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   chunk_pairs: int) -> np.ndarray:
    """Exact Jaccard of pairs whose rows are sorted (numba kernel, else SciPy in chunks)."""
    from rclrec.similarity._kernels import HAVE_NUMBA

    if HAVE_NUMBA and len(rows):
        import numba

        from rclrec.similarity._kernels import jaccard_pairs

        return jaccard_pairs(a.indptr.astype(np.int64), a.indices.astype(np.int64), a.shape[1],
                             rows, cols, max(1, min(len(rows), numba.get_num_threads() * 4)))
    scores = np.empty(len(rows), dtype=np.float32)
    for lo in range(0, len(rows), chunk_pairs):
        r, c = rows[lo:lo + chunk_pairs], cols[lo:lo + chunk_pairs]
        inter = np.asarray(a[r].multiply(a[c]).sum(axis=1)).ravel()
        scores[lo:lo + chunk_pairs] = inter / (sizes[r] + sizes[c] - inter)
    return scores
