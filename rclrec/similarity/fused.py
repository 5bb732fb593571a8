"""The numba fast path of the index build: inputs prepared once, then any set of rows scored.

:func:`kernel_inputs` turns the sequences into the two CSR matrices the kernel reads (A and
A.T, columns numbered by decreasing document frequency); :func:`kernel_rows` returns the top-k
neighbours of the given rows. The single-machine build, the Dask build
(:mod:`rclrec.similarity.distributed`) and the incremental update (:mod:`rclrec.similarity.update`)
all call these two functions, so they select the same neighbours bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FUSED_METRICS = ("jaccard", "ngram", "tfidf")  # metrics the numba kernel scores


@dataclass
class KernelInputs:
    """Everything the kernel reads (plain arrays: cheap to pickle to a worker)."""

    indptr: np.ndarray  # CSR of A (N x G), columns by decreasing document frequency
    indices: np.ndarray
    data: np.ndarray
    t_indptr: np.ndarray  # CSR of A.T (G x N)
    t_indices: np.ndarray
    t_data: np.ndarray
    sizes: np.ndarray  # (N,) float64 set sizes (Jaccard)
    targets: np.ndarray  # (N,) int64
    exclude_same_target: bool
    jaccard: bool  # Jaccard from the overlap count; else cosine of unit rows (tfidf)

    @property
    def num_rows(self) -> int:
        return len(self.sizes)


def kernel_inputs(inputs, targets: np.ndarray, metric: str, params: dict,
                  exclude_same_target: bool) -> KernelInputs:
    """Incidence (or TF-IDF) matrix of the inputs and its transpose, for :func:`kernel_rows`."""
    from rclrec.similarity.measures import incidence, tfidf_matrix

    if metric == "tfidf":
        a = tfidf_matrix(inputs)
    else:
        a = incidence(inputs, params.get("n", 1) if metric == "ngram" else 1)
    # popular columns first: the exact scan then meets candidates in id order (sequential
    # memory access); the candidate budget reads a row from its end, rarest items first
    df = np.bincount(a.indices, minlength=a.shape[1])
    a = a[:, np.argsort(-df, kind="stable")].tocsr()
    a.sort_indices()
    at = a.T.tocsr()
    return KernelInputs(a.indptr.astype(np.int64), a.indices.astype(np.int32),
                        a.data.astype(np.float32), at.indptr.astype(np.int64),
                        at.indices.astype(np.int32), at.data.astype(np.float32),
                        np.diff(a.indptr).astype(np.float64),
                        np.asarray(targets, dtype=np.int64), bool(exclude_same_target),
                        metric != "tfidf")


@dataclass
class BlockResult:
    """One row block's selected entries and, for the global threshold, its score histograms."""

    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    hist: np.ndarray | None = None  # (NUM_HI_BINS,) counts of ``bits >> 12``
    lo_hist: np.ndarray | None = None  # (4096,) low bits of the scores in bin ``hi_bin``


def score_block(ki: KernelInputs, row_ids: np.ndarray, k: int, budget: int | None = None,
                want_hist: bool = False, hi_bin: int = -1) -> BlockResult:
    """:func:`kernel_rows` with its own histograms: one independent task of a parallel build."""
    import numba

    from rclrec.similarity._kernels import NUM_HI_BINS

    n_chunks = max(1, min(numba.get_num_threads() * 4, len(row_ids)))
    hist = np.zeros((n_chunks, NUM_HI_BINS), np.int64) if want_hist else None
    lo = np.zeros((n_chunks, 4096), np.int64) if hi_bin >= 0 else None
    rows, cols, scores = kernel_rows(ki, row_ids, k, budget, hist=hist, hi_bin=hi_bin,
                                     lo_hist=lo, n_chunks=n_chunks)
    return BlockResult(rows, cols, scores, None if hist is None else hist.sum(axis=0),
                       None if lo is None else lo.sum(axis=0))


def kernel_rows(ki: KernelInputs, row_ids: np.ndarray, k: int, budget: int | None = None,
                hist: np.ndarray | None = None, hi_bin: int = -1,
                lo_hist: np.ndarray | None = None,
                n_chunks: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of ``row_ids`` (score desc, then id asc) as flat entry arrays.

    Args:
        ki: from :func:`kernel_inputs`.
        row_ids: (R,) rows to score.
        k: neighbours kept per row (0: only fill the histograms).
        budget: posting entries scanned per row (None: exact); see ``topk_rows``.
        hist, hi_bin, lo_hist: histograms of the score bits for the global threshold; the
            first dimension must be at least ``n_chunks``.
        n_chunks: parallel chunks (default: 4 per numba thread).

    Returns:
        rows (E,) int64, cols (E,) int32, scores (E,) float32, grouped by row in
        ``row_ids`` order, best first.
    """
    import numba

    from rclrec.similarity._kernels import NUM_HI_BINS, topk_rows

    row_ids = np.ascontiguousarray(row_ids, dtype=np.int64)
    r = len(row_ids)
    if n_chunks is None:
        n_chunks = max(1, numba.get_num_threads() * 4)
    chunks = max(1, min(n_chunks, r))
    hist = np.zeros((0, NUM_HI_BINS), np.int64) if hist is None else hist[:chunks]
    lo_hist = np.zeros((0, 4096), np.int64) if lo_hist is None else lo_hist[:chunks]
    out_cols = np.empty((r, max(k, 1)), dtype=np.int64)
    out_scores = np.empty((r, max(k, 1)), dtype=np.float32)
    out_count = np.zeros(r, dtype=np.int64)
    if r:
        topk_rows(ki.indptr, ki.indices, ki.data, ki.t_indptr, ki.t_indices, ki.t_data,
                  ki.sizes, ki.targets, ki.exclude_same_target, ki.jaccard, row_ids, k, chunks,
                  out_cols, out_scores, out_count, hist, hi_bin, lo_hist,
                  -1 if budget is None else int(budget))
    mask = np.arange(out_cols.shape[1])[None, :] < out_count[:, None]
    return (np.repeat(row_ids, out_count), out_cols[mask].astype(np.int32),
            out_scores[mask])
