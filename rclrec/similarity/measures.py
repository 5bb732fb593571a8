"""Sequence-similarity metrics of RCL (docs/METHOD.md section 3, Eq. 6-9), scored in row blocks.

Every metric is exposed the same way: :func:`score_blocks` yields, for consecutive blocks of
rows, the candidate pairs ``(rows, cols, scores)`` with a non-zero similarity. An ``N x N``
matrix is never formed: item (or n-gram) incidence matrices are CSR, and the products are taken
one row block at a time, with the block size chosen so that a block's product stays under a
fixed number of stored entries.

Metrics (all on the *input* items of a training sequence, docs/METHOD.md section 3):

- ``jaccard`` (Eq. 6): ``|A & B| / |A | B|`` on item sets.
- ``tfidf`` (Eq. 7): cosine of ``tf * log(N / df)`` vectors (tf = count in the sequence).
- ``ngram`` (Eq. 8): Jaccard on the sets of contiguous n-grams (``n`` = 2 by default).
- ``levenshtein``: ``1 - d / max(|S1|, |S2|)`` with d the edit distance over item ids. Only
  pairs sharing an item can score above 0 (with no common item every position of the longer
  sequence must be edited, so ``d = max``), hence the item product gives an exact candidate set.
- ``semantic`` (Eq. 9): cosine of given representations, an ``(N, d)`` float array. Pairs with
  cosine <= 0 are dropped: Eq. 10 needs non-negative weights.

Conventions: a pair involving an empty input scores 0; scores are float32, computed in float64
and rounded once, so a brute-force reference using the same formula gets the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rclrec.config import ConfigError

METRICS = ("jaccard", "tfidf", "ngram", "levenshtein", "semantic")

# A block's sparse product may hold about this many entries (each costs ~40 bytes of
# temporaries while it is scored), which bounds memory independently of N.
DEFAULT_BLOCK_ENTRIES = 8_000_000


@dataclass
class ScoreBlock:
    """Candidate pairs of one row block.

    Attributes:
        start, stop: the block covers rows ``start <= i < stop``.
        rows: (E,) int64 global row ids, non-decreasing.
        cols: (E,) int64 column ids (the self pair may be included; selection drops it).
        scores: (E,) float32 similarities, all > 0.
    """

    start: int
    stop: int
    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray


def check_metric(metric: str, params: dict | None = None) -> dict:
    """Validate a metric name and return its parameters with defaults filled in."""
    params = dict(params or {})
    if metric not in METRICS:
        raise ConfigError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
    allowed = {"ngram": {"n"}, "semantic": {"representations"}}.get(metric, set())
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(f"metric {metric!r} takes no parameter(s) {sorted(unknown)}")
    if metric == "ngram":
        params.setdefault("n", 2)
        if int(params["n"]) < 1:
            raise ConfigError(f"n-gram size must be >= 1, got {params['n']}")
        params["n"] = int(params["n"])
    if metric == "semantic" and params.get("representations") is None:
        raise ConfigError("metric 'semantic' needs representations=(N, d) array")
    return params


# ------------------------------------------------------------------------------ incidence


def _flatten(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in inputs), dtype=np.int64, count=len(inputs))
    flat = (np.concatenate([np.asarray(s, dtype=np.int64) for s in inputs])
            if lengths.sum() else np.zeros(0, dtype=np.int64))
    return flat, lengths


def ngram_ids(inputs: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Contiguous n-grams of every input, mapped to dense ids.

    Returns:
        rows: (G,) int64 sequence index of each n-gram occurrence.
        ids: (G,) int64 n-gram id in ``0..num_grams-1``.
        num_grams: number of distinct n-grams.
    """
    flat, lengths = _flatten(inputs)
    n_seq = len(lengths)
    offsets = np.zeros(n_seq + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row_of = np.repeat(np.arange(n_seq, dtype=np.int64), lengths)
    pos = np.arange(len(flat), dtype=np.int64) - offsets[row_of]
    valid = pos <= lengths[row_of] - n  # the window must not cross into the next sequence
    starts = np.flatnonzero(valid)
    rows = row_of[starts]
    if len(starts) == 0:
        return rows, np.zeros(0, dtype=np.int64), 0
    base = int(flat.max()) + 1
    if n == 1:
        keys = flat[starts]
    elif n * np.log2(base) < 62:  # mixed-radix key fits in int64: cheap 1-D unique
        keys = np.zeros(len(starts), dtype=np.int64)
        for j in range(n):
            keys = keys * base + flat[starts + j]
    else:
        grams = np.stack([flat[starts + j] for j in range(n)], axis=1)
        _, ids = np.unique(grams, axis=0, return_inverse=True)
        return rows, ids.ravel().astype(np.int64), int(ids.max()) + 1
    uniq, ids = np.unique(keys, return_inverse=True)
    return rows, ids.astype(np.int64), len(uniq)


def incidence(inputs: Sequence[np.ndarray], n: int = 1, binary: bool = True) -> sp.csr_matrix:
    """Sequence x n-gram incidence matrix (n = 1: items).

    Args:
        inputs: N int arrays.
        n: n-gram size.
        binary: 1 per distinct n-gram (sets, Eq. 6 and 8); else occurrence counts (tf, Eq. 7).

    Returns:
        (N, G) CSR float64 with sorted indices.
    """
    rows, ids, num = ngram_ids(inputs, n)
    a = sp.csr_matrix((np.ones(len(rows)), (rows, ids)), shape=(len(inputs), max(num, 1)))
    a.sum_duplicates()
    if binary:
        a.data[:] = 1.0
    return a


def tfidf_matrix(inputs: Sequence[np.ndarray]) -> sp.csr_matrix:
    """Row-normalised TF-IDF vectors (Eq. 7): ``w = tf * log(N / df)``, L2 norm 1 per row.

    Rows whose weights are all 0 (empty input, or only items present in every sequence) stay 0.
    """
    tf = incidence(inputs, 1, binary=False)
    n_seq = tf.shape[0]
    df = np.bincount(tf.indices, minlength=tf.shape[1])
    idf = np.log(n_seq / np.maximum(df, 1))
    w = tf.copy()
    w.data = w.data * idf[w.indices]
    norms = np.sqrt(np.asarray(w.multiply(w).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    w = sp.diags(scale) @ w
    w.eliminate_zeros()
    return w.tocsr()


# ------------------------------------------------------------------------------ blocking


def row_blocks(cost: np.ndarray, budget: int, max_rows: int = 4096) -> list[tuple[int, int]]:
    """Consecutive row ranges whose summed ``cost`` stays under ``budget`` (at least one row)."""
    n = len(cost)
    blocks = []
    cum = np.concatenate([[0], np.cumsum(cost, dtype=np.int64)])
    start = 0
    while start < n:
        stop = int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        blocks.append((start, stop))
        start = stop
    return blocks


def _product_cost(a: sp.csr_matrix) -> np.ndarray:
    """Upper bound on the stored entries of each row of ``a @ a.T`` (sum of df of its columns)."""
    df = np.bincount(a.indices, minlength=a.shape[1]).astype(np.int64)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    cost = np.bincount(rows, weights=df[a.indices], minlength=a.shape[0]).astype(np.int64)
    return np.minimum(cost, a.shape[0])


def _coo_rows(c: sp.csr_matrix, start: int) -> np.ndarray:
    return np.repeat(np.arange(start, start + c.shape[0], dtype=np.int64), np.diff(c.indptr))


def _set_jaccard_blocks(a: sp.csr_matrix, budget: int) -> Iterator[ScoreBlock]:
    sizes = np.diff(a.indptr).astype(np.float64)
    at = a.T.tocsr()
    for start, stop in row_blocks(_product_cost(a), budget):
        c = (a[start:stop] @ at).tocsr()  # intersection counts
        rows = _coo_rows(c, start)
        cols = c.indices.astype(np.int64)
        inter = c.data
        union = sizes[rows] + sizes[cols] - inter
        yield ScoreBlock(start, stop, rows, cols, (inter / union).astype(np.float32))


def _cosine_blocks(w: sp.csr_matrix, budget: int) -> Iterator[ScoreBlock]:
    wt = w.T.tocsr()
    for start, stop in row_blocks(_product_cost(w), budget):
        c = (w[start:stop] @ wt).tocsr()
        rows = _coo_rows(c, start)
        s = c.data.astype(np.float32)
        keep = s > 0  # rounding can turn a tiny positive into 0; Eq. 10 needs s > 0
        yield ScoreBlock(start, stop, rows[keep], c.indices[keep].astype(np.int64), s[keep])


def levenshtein_strings(inputs: Sequence[np.ndarray]) -> list:
    """Inputs as str (one code point per item, fast path of rapidfuzz) or lists of ints."""
    top = max((int(s.max()) for s in inputs if len(s)), default=0)
    if top < 0x110000 - 0x800:
        out = []
        for s in inputs:
            codes = np.asarray(s, dtype=np.int64)
            codes = np.where(codes >= 0xD800, codes + 0x800, codes)  # skip the surrogates
            out.append("".join(map(chr, codes.tolist())))
        return out
    return [list(map(int, s)) for s in inputs]


def levenshtein_pairs(strings: list, lengths: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                      workers: int = -1) -> np.ndarray:
    """``1 - d / max(len)`` for the given pairs, as float32 (0 for two empty inputs)."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    if len(rows) == 0:
        return np.zeros(0, dtype=np.float32)
    d = process.cpdist([strings[i] for i in rows], [strings[j] for j in cols],
                       scorer=Levenshtein.distance, workers=workers, dtype=np.int32)
    longest = np.maximum(lengths[rows], lengths[cols]).astype(np.float64)
    sim = np.divide(d, longest, out=np.ones(len(rows)), where=longest > 0)
    return (1.0 - sim).astype(np.float32)


def _levenshtein_blocks(inputs: Sequence[np.ndarray], budget: int,
                        workers: int) -> Iterator[ScoreBlock]:
    strings = levenshtein_strings(inputs)
    lengths = np.fromiter((len(s) for s in inputs), dtype=np.int64, count=len(inputs))
    a = incidence(inputs, 1)
    at = a.T.tocsr()
    for start, stop in row_blocks(_product_cost(a), budget):
        c = (a[start:stop] @ at).tocsr()  # pairs sharing an item: a superset of s > 0
        rows = _coo_rows(c, start)
        cols = c.indices.astype(np.int64)
        s = levenshtein_pairs(strings, lengths, rows, cols, workers)
        keep = s > 0
        yield ScoreBlock(start, stop, rows[keep], cols[keep], s[keep])


def _semantic_blocks(reps: np.ndarray, budget: int) -> Iterator[ScoreBlock]:
    x = np.asarray(reps, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"representations must be (N, d), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    n = len(x)
    rows_per_block = max(1, min(n, budget // max(n, 1)))
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        dense = (x[start:stop] @ x.T).astype(np.float32)  # (b, N), bounded by budget
        r, c = np.nonzero(dense > 0)
        yield ScoreBlock(start, stop, r.astype(np.int64) + start, c.astype(np.int64),
                         dense[r, c])


def score_blocks(inputs: Sequence[np.ndarray], metric: str, *, params: dict | None = None,
                 block_entries: int = DEFAULT_BLOCK_ENTRIES,
                 workers: int = -1) -> Iterator[ScoreBlock]:
    """All pairs with non-zero similarity, one row block at a time.

    Args:
        inputs: N int arrays (the input items of each training sequence).
        metric: one of :data:`METRICS`.
        params: ``{"n": 2}`` for ngram; ``{"representations": (N, d) array}`` for semantic.
        block_entries: bound on the entries of one block's product (memory knob).
        workers: threads for the Levenshtein kernel (-1: all cores).

    Yields:
        :class:`ScoreBlock` objects covering rows 0..N-1 in order.
    """
    params = check_metric(metric, params)
    if metric == "jaccard":
        yield from _set_jaccard_blocks(incidence(inputs, 1), block_entries)
    elif metric == "ngram":
        yield from _set_jaccard_blocks(incidence(inputs, params["n"]), block_entries)
    elif metric == "tfidf":
        yield from _cosine_blocks(tfidf_matrix(inputs), block_entries)
    elif metric == "levenshtein":
        yield from _levenshtein_blocks(inputs, block_entries, workers)
    else:
        reps = np.asarray(params["representations"])
        if len(reps) != len(inputs):
            raise ValueError(f"{len(reps)} representations for {len(inputs)} sequences")
        yield from _semantic_blocks(reps, block_entries)


def pair_scores(inputs: Sequence[np.ndarray], metric: str, rows: np.ndarray, cols: np.ndarray,
                params: dict | None = None) -> np.ndarray:
    """Similarity of arbitrary pairs ``(rows[e], cols[e])``, float32 (spot checks, tests).

    Uses the same formulas as :func:`score_blocks`, pair by pair, vectorized.
    """
    params = check_metric(metric, params)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if metric in ("jaccard", "ngram"):
        a = incidence(inputs, params.get("n", 1))
        sizes = np.diff(a.indptr).astype(np.float64)
        inter = np.asarray(a[rows].multiply(a[cols]).sum(axis=1)).ravel()
        union = sizes[rows] + sizes[cols] - inter
        return np.divide(inter, union, out=np.zeros(len(rows)), where=union > 0).astype(
            np.float32)
    if metric == "tfidf":
        w = tfidf_matrix(inputs)
        return np.asarray(w[rows].multiply(w[cols]).sum(axis=1)).ravel().astype(np.float32)
    if metric == "levenshtein":
        lengths = np.fromiter((len(s) for s in inputs), dtype=np.int64, count=len(inputs))
        s = levenshtein_pairs(levenshtein_strings(inputs), lengths, rows, cols)
        return np.where((lengths[rows] > 0) & (lengths[cols] > 0), s, 0).astype(np.float32)
    x = np.asarray(params["representations"], dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    dots = np.einsum("ij,ij->i", x[rows], x[cols])
    den = norms[rows] * norms[cols]
    return np.divide(dots, den, out=np.zeros(len(rows)), where=den > 0).astype(np.float32)
