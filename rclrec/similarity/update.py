"""Incremental update of a row-selection index when sequences are added or extended.

Given the index of the old data and the new data (old rows keep their ids, new sequences are
appended), only these rows are rescored with the kernel:

- the changed rows (new, or whose input or target changed);
- the rows whose stored list was full (k entries) and keeps fewer than the new k entries once
  the changed rows are taken out of it (an old neighbour's score changed, so the next-best
  unchanged sequence, which was never stored, may now belong in the list).

Every other row's list is its old entries with unchanged neighbours, merged with its scores
against the changed rows (read from the changed rows' full score lists: the metric is
symmetric), cut to the new k. The stored list was the top of all unchanged sequences, so the
merge is exact: the result equals a full rebuild, ties included. Set metrics only (jaccard,
ngram): a TF-IDF weight depends on every sequence, so any change rescales every score.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from rclrec.similarity.fused import kernel_inputs, kernel_rows
from rclrec.similarity.index import SimilarityIndex, row_k, top_k_per_row
from rclrec.similarity.measures import incidence, row_blocks
from rclrec.similarity.spec import IndexSpec

UPDATABLE_METRICS = ("jaccard", "ngram")


def update_index(index: SimilarityIndex, inputs: Sequence[np.ndarray], targets: np.ndarray,
                 changed: Sequence[int] = (), *,
                 block_entries: int = 8_000_000) -> SimilarityIndex:
    """The index of the new data, from ``index`` (built on the old data) without a rebuild.

    Args:
        index: a row-selection jaccard / ngram index built by :func:`build_index` (exact).
        inputs: all N' input sequences of the new data; rows ``< index.num_rows`` are the old
            rows, the rest are new.
        targets: (N',) targets of the new data.
        changed: old row ids whose input or target changed (e.g. an extended sequence).
        block_entries: bound on the entries of one block of the changed rows' scores.

    Returns:
        A new :class:`SimilarityIndex` equal to ``build_index`` on the new data.
    """
    t0 = time.perf_counter()
    info = dict(index.info)
    metric = index.metric
    if metric not in UPDATABLE_METRICS or info.get("selection") != "row" or info.get(
            "candidate_budget") or info.get("approx"):
        raise ValueError(f"incremental update needs an exact row-selection index of "
                         f"{' or '.join(UPDATABLE_METRICS)} (got metric {metric!r}, selection "
                         f"{info.get('selection')!r}, candidate_budget "
                         f"{info.get('candidate_budget')}); rebuild it with build_index")
    n_old, n_new = index.num_rows, len(inputs)
    targets = np.asarray(targets, dtype=np.int64)
    if n_new < n_old or len(targets) != n_new:
        raise ValueError(f"the new data must keep the {n_old} old rows and have one target per "
                         f"input (got {n_new} inputs, {len(targets)} targets)")
    changed = np.asarray(changed, dtype=np.int64)
    if len(changed) and (changed.min() < 0 or changed.max() >= n_old):
        raise ValueError(f"changed rows must be old row ids in [0, {n_old})")
    is_changed = np.zeros(n_new, dtype=bool)
    is_changed[changed] = True
    is_changed[n_old:] = True
    spec = IndexSpec.of_index(metric, info)
    exclude = spec.exclude_same_target
    k_old, k_new = info["k"], row_k(spec.alpha, n_new, spec.max_neighbours)

    # old entries whose neighbour did not change are still valid
    old_rows = np.repeat(np.arange(n_old, dtype=np.int64), index.degrees())
    valid = ~is_changed[index.indices]
    kept = np.bincount(old_rows[valid], minlength=n_old)
    full = index.degrees() == k_old
    rescore = is_changed.copy()
    rescore[:n_old] |= full & (kept < k_new)

    # scores of every row against the changed rows, from the changed rows' side
    c_rows, c_cols, c_scores = _changed_scores(inputs, targets, np.flatnonzero(is_changed),
                                               spec.params().get("n", 1), exclude, block_entries)
    keep = valid & ~rescore[old_rows]  # rows to rescore get their whole list from the kernel
    gain = ~rescore[c_cols]  # a kept row gains the changed row as a candidate
    rows = np.r_[old_rows[keep], c_cols[gain]]
    cols = np.r_[index.indices[keep], c_rows[gain]]
    scores = np.r_[index.scores[keep], c_scores[gain]]
    best = top_k_per_row(rows, cols, scores, k_new)
    ki = kernel_inputs(inputs, targets, metric, spec.params(), exclude)
    r_rows, r_cols, r_scores = kernel_rows(ki, np.flatnonzero(rescore), k_new)

    rows = np.r_[rows[best], r_rows]
    order = np.argsort(rows, kind="stable")  # both parts are best first within a row
    indptr = np.zeros(n_new + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_new), out=indptr[1:])
    info.update(sequences=n_new, k=k_new, cache_hit=False, rows_rescored=int(rescore.sum()),
                rows_changed=int(is_changed.sum()), seconds=time.perf_counter() - t0)
    info.pop("cache_path", None)
    out = SimilarityIndex(indptr, np.r_[cols[best], r_cols][order].astype(np.int32),
                          np.r_[scores[best], r_scores][order].astype(np.float32), metric, info)
    out.info["neighbours_total"] = out.nnz
    return out


def _changed_scores(inputs, targets, changed_rows, n, exclude, block_entries):
    """All eligible pairs (changed row, any row) with score > 0: Jaccard as the kernel rounds it."""
    a = incidence(inputs, n)
    at = a.T.tocsr()
    sizes = np.diff(a.indptr).astype(np.float64)
    sub = a[changed_rows]
    cost = np.asarray(sub @ np.bincount(a.indices, minlength=a.shape[1])).ravel()
    parts = []
    for lo, hi in row_blocks(cost.astype(np.int64), block_entries):
        prod = (sub[lo:hi] @ at).tocsr()  # intersection counts
        rows = np.repeat(changed_rows[lo:hi], np.diff(prod.indptr))
        cols = prod.indices.astype(np.int64)
        x = prod.data
        s = (x / (sizes[rows] + sizes[cols] - x)).astype(np.float32)
        keep = (cols != rows) & (s > 0)
        if exclude:
            keep &= targets[cols] != targets[rows]
        parts.append((rows[keep], cols[keep], s[keep]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
