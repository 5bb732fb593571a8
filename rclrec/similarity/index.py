"""The weak-positive index: for each training sequence, its top similar sequences as CSR arrays.

The paper stores ``alpha * N^2`` similarities (Sec. 3.3.2). Here only the selected neighbours
are kept: at most ``max_neighbours`` per row, so memory is ``O(N * k)``. The candidate pairs
come from :func:`rclrec.similarity.measures.score_blocks` one row block at a time.

Selection (docs/METHOD.md section 3 and 5):

- ``row`` (paper text): per row, the top ``k = ceil(alpha * (N - 1))`` sequences, capped at
  ``max_neighbours``.
- ``global`` (official code): one threshold ``t`` = the ``P``-th largest similarity over all
  eligible ordered pairs, ``P = ceil(alpha * E)``; a row keeps its pairs with ``s >= t`` (ties at
  ``t`` all kept), capped at ``max_neighbours``. The threshold is found exactly with a radix
  histogram of the float32 bit patterns (two passes), not by storing the pairs.

Always excluded: the sequence itself and pairs with similarity 0; by default also the sequences
with the same target (weak positives are "similar sequences with different targets").
Ties are broken by the smaller neighbour id, so results are deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from rclrec.config import ConfigError
from rclrec.files import CorruptFile, atomic_write
from rclrec.similarity._kernels import HAVE_NUMBA, NUM_HI_BINS
from rclrec.similarity.fused import FUSED_METRICS
from rclrec.similarity.measures import (
    ScoreBlock,
    check_metric,
    row_blocks,
    score_blocks,
)
from rclrec.similarity.spec import BuildOptions, IndexSpec, spec_of

INDEX_VERSION = 1  # bump when the stored format or the selection rules change


@dataclass
class SimilarityIndex:
    """Selected weak-positive candidates WP_u with their similarities, as CSR arrays.

    Attributes:
        indptr: (N + 1,) int64; row i's entries are ``indptr[i]:indptr[i + 1]``.
        indices: (nnz,) int32 neighbour ids (0-based rows), by decreasing score per row.
        scores: (nnz,) float32 similarities s(i, j) > 0.
        metric: metric name.
        info: how it was built (alpha, selection, k or threshold, params, timings).
    """

    indptr: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    metric: str = "jaccard"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def degrees(self) -> np.ndarray:
        """(N,) number of stored neighbours of each row."""
        return np.diff(self.indptr)

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour ids and scores of row ``i``, best first."""
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.scores[lo:hi]

    def to_csr(self) -> sp.csr_matrix:
        """(N, N) scipy CSR with the stored scores."""
        n = self.num_rows
        return sp.csr_matrix((self.scores, self.indices, self.indptr), shape=(n, n))

    def save(self, path: str | os.PathLike) -> Path:
        """Write an .npz (arrays indptr, indices, scores, info as JSON), atomically."""

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, indptr=self.indptr, indices=self.indices, scores=self.scores,
                         metric=np.array(self.metric), info=np.array(json.dumps(self.info)))

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimilarityIndex:
        """Read an index written by ``save``, checked (``problem``): the loss trusts its scores
        as weights, and checks them itself only where that costs no wait for a GPU.

        Raises:
            CorruptFile: the file is not such an index (truncated, damaged, edited); the
                message names it.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"])) if "info" in z else {}
                metric = str(z["metric"]) if "metric" in z else info.get("metric", "")
                index = cls(z["indptr"].astype(np.int64), z["indices"].astype(np.int32),
                            z["scores"].astype(np.float32), metric, info)
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # JSON errors too
            raise CorruptFile(f"{path}: not a similarity index written by rclrec ({e}); "
                              f"remove it to build it again") from e
        problem = index.problem()
        if problem is not None:
            raise CorruptFile(f"{path}: not a valid similarity index ({problem}); remove it to "
                              f"build it again")
        return index

    def problem(self) -> str | None:
        """What makes these arrays no CSR index of positive similarities, or None."""
        indptr, indices, scores = self.indptr, self.indices, self.scores
        if indptr.ndim != 1 or indices.ndim != 1 or scores.ndim != 1 or len(indptr) == 0:
            return "indptr, indices and scores must be non-empty 1-d arrays"
        if indptr[0] != 0 or bool((np.diff(indptr) < 0).any()):
            return "indptr must start at 0 and never decrease"
        if not indptr[-1] == len(indices) == len(scores):
            return (f"indptr ends at {indptr[-1]} but there are {len(indices)} indices and "
                    f"{len(scores)} scores")
        if len(indices) and (indices.min() < 0 or indices.max() >= self.num_rows):
            return f"a neighbour id outside 0..{self.num_rows - 1}"
        if not bool(np.isfinite(scores).all()) or bool((scores <= 0).any()):
            return "every score must be finite and > 0"
        return None


def default_cache_dir() -> Path:
    """Where indexes are cached: ``$RCLREC_CACHE/similarity`` or ``~/.cache/rclrec/similarity``."""
    return Path(os.environ.get("RCLREC_CACHE", Path.home() / ".cache" / "rclrec")) / "similarity"


def row_k(alpha: float, n: int, max_neighbours: int) -> int:
    """k = ceil(alpha * (N - 1)) capped at ``max_neighbours`` (float noise ignored)."""
    return int(min(math.ceil(alpha * (n - 1) - 1e-9), max_neighbours))


def sequences_hash(inputs: Sequence[np.ndarray], targets: np.ndarray | None = None) -> str:
    """Content hash of the inputs (and targets) that keys the index cache."""
    h = hashlib.sha256()
    for s in inputs:
        a = np.ascontiguousarray(s, dtype=np.int64)
        h.update(np.int64(len(a)).tobytes())
        h.update(a.tobytes())
    if targets is not None:
        h.update(b"targets")
        h.update(np.ascontiguousarray(targets, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def cache_path(cache_dir: str | os.PathLike, data_hash: str, metric: str,
               options: dict[str, Any]) -> Path:
    """``<cache_dir>/<metric>-<data hash>-<options hash>.npz``."""
    opts = json.dumps({"version": INDEX_VERSION, **options}, sort_keys=True, default=str)
    return Path(cache_dir) / (f"{metric}-{data_hash}-"
                              f"{hashlib.sha256(opts.encode()).hexdigest()[:12]}.npz")


def _filter(block: ScoreBlock, targets: np.ndarray, exclude_same_target: bool) -> ScoreBlock:
    keep = (block.cols != block.rows) & (block.scores > 0)
    if exclude_same_target:
        keep &= targets[block.cols] != targets[block.rows]
    return ScoreBlock(block.start, block.stop, block.rows[keep], block.cols[keep],
                      block.scores[keep])


def top_k_per_row(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, k: int,
                  threshold: float | None = None) -> np.ndarray:
    """Positions of the top ``k`` entries of each row (score desc, then col asc), in that order.

    Args:
        rows, cols, scores: (E,) entries; rows need not be sorted.
        k: entries kept per row.
        threshold: if given, entries below it are dropped first.

    Returns:
        (E',) int64 positions into the inputs, grouped by row (ascending), best first.
    """
    pos = np.arange(len(rows), dtype=np.int64)
    if threshold is not None:
        pos = pos[scores >= threshold]
    if len(pos) == 0 or k <= 0:
        return pos[:0]
    r, s = rows[pos], scores[pos]
    # Cheap pre-filter: per row, the k-th largest score bucket on a 1024-bin grid; entries in
    # lower buckets cannot be in the top k, and most entries are there for long rows.
    counts = np.bincount(r - r.min(), minlength=int(r.max() - r.min()) + 1)
    if counts.max() > k:
        nb = 1024
        bins = np.minimum((s * nb).astype(np.int64), nb - 1)
        rr = r - r.min()
        hist = np.bincount(rr * nb + (nb - 1 - bins), minlength=len(counts) * nb)
        cum = np.cumsum(hist.reshape(len(counts), nb), axis=1)
        # first (highest-score) bucket where the running count reaches k; rows with fewer keep all
        cut = np.where(cum[:, -1] > k, np.argmax(cum >= k, axis=1), nb - 1)
        keep = (nb - 1 - bins) <= cut[rr]
        pos, r, s = pos[keep], r[keep], s[keep]
    order = np.lexsort((cols[pos], -s, r))
    pos, r = pos[order], r[order]
    first = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    rank = np.arange(len(r)) - np.repeat(first, np.diff(np.r_[first, len(r)]))
    return pos[rank < k]


def _to_index(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, metric: str,
              info: dict) -> SimilarityIndex:
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
    scores = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return SimilarityIndex(indptr, cols.astype(np.int32), scores.astype(np.float32), metric, info)


def _progress(blocks: Iterable[ScoreBlock], n: int, show: bool, desc: str):
    if not show:
        yield from blocks
        return
    from tqdm import tqdm

    with tqdm(total=n, desc=desc, unit="row", unit_scale=True, leave=False) as bar:
        for b in blocks:
            yield b
            bar.update(b.stop - b.start)


def _global_threshold(hist_hi: np.ndarray, p: int, lo_hist_of) -> float:
    """Exact P-th largest float32 value from a histogram of ``bits >> 12``.

    ``lo_hist_of(b)`` runs a second pass and returns the (4096,) histogram of the low 12 bits of
    the scores whose high bits are ``b``.
    """
    cum = np.cumsum(hist_hi[::-1])
    b = len(hist_hi) - 1 - int(np.searchsorted(cum, p))
    above = int(hist_hi[b + 1:].sum())
    cum_lo = np.cumsum(lo_hist_of(b)[::-1])
    lo = 4095 - int(np.searchsorted(cum_lo, p - above))
    return float(np.array([(b << 12) | lo], dtype=np.uint32).view(np.float32)[0])


def _numpy_lo_hist(blocks: Callable[[], Iterable[ScoreBlock]]) -> Callable[[int], np.ndarray]:
    def lo_hist_of(b: int) -> np.ndarray:
        lo_hist = np.zeros(4096, dtype=np.int64)
        for blk in blocks():
            bits = blk.scores.view(np.uint32)
            lo_hist += np.bincount(bits[(bits >> 12) == b] & 0xFFF, minlength=4096)
        return lo_hist

    return lo_hist_of


def _eligible_pairs(targets: np.ndarray, exclude_same_target: bool) -> int:
    n = len(targets)
    if not exclude_same_target:
        return n * (n - 1)
    _, group = np.unique(targets, return_counts=True)
    return n * (n - 1) - int((group * (group - 1)).sum())


def _fused_parts(inputs, targets: np.ndarray, spec: IndexSpec, k: int, build: BuildOptions,
                 rows_per_block: int = 4096):
    """Row or global selection with the numba kernel (jaccard / ngram / tfidf), one task per
    block of rows: here in turn, or on the workers of a Dask client."""
    from rclrec.similarity.fused import kernel_inputs, score_block

    ki = kernel_inputs(inputs, targets, spec.metric, spec.params(), spec.exclude_same_target)
    n = ki.num_rows
    client, budget = build.client, spec.candidate_budget
    if client is not None:
        from rclrec.similarity.distributed import dask_mapper, rows_per_task

        rows_per_block = rows_per_task(client, n, rows_per_block)
        run = dask_mapper(client, ki)
    blocks = [np.arange(s, min(n, s + rows_per_block), dtype=np.int64)
              for s in range(0, n, rows_per_block)]
    if client is None:
        def run(blocks, **kw):
            for ids in _progress_rows(blocks, build.show_progress, f"{spec.metric} index"):
                yield score_block(ki, ids, **kw)

    info: dict[str, Any] = {"engine": "numba" if client is None else "numba+dask"}
    if spec.selection == "row":
        parts = [(b.rows, b.cols, b.scores) for b in run(blocks, k=k, budget=budget)]
        return parts, info
    parts, hist_hi = [], np.zeros(NUM_HI_BINS, dtype=np.int64)
    for b in run(blocks, k=spec.max_neighbours, budget=budget, want_hist=True):
        parts.append((b.rows, b.cols, b.scores))
        hist_hi += b.hist

    def lo_hist_of(bin_hi: int) -> np.ndarray:
        return sum(b.lo_hist for b in run(blocks, k=0, budget=budget, hi_bin=bin_hi))

    return _apply_threshold(parts, hist_hi, targets, spec, lo_hist_of, info)


def _progress_rows(blocks: list[np.ndarray], show: bool, desc: str):
    if not show:
        return blocks
    from tqdm import tqdm

    return tqdm(blocks, desc=desc, unit="block", leave=False)


def _apply_threshold(parts, hist_hi, targets, spec: IndexSpec, lo_hist_of, info):
    eligible = _eligible_pairs(targets, spec.exclude_same_target)
    p = max(1, math.ceil(spec.alpha * eligible - 1e-9))
    positives = int(hist_hi.sum())
    # fewer positive pairs than P: the threshold falls on a zero, so every positive pair passes
    threshold = 0.0 if p >= positives else _global_threshold(hist_hi, p, lo_hist_of)
    info.update(threshold=threshold, pairs_wanted=p, positive_pairs=positives,
                eligible_pairs=eligible)
    parts = [(r[s >= threshold], c[s >= threshold], s[s >= threshold]) for r, c, s in parts]
    return parts, info


def _levenshtein_candidate_blocks(inputs, targets, spec: IndexSpec, build: BuildOptions,
                                  pairs_per_block: int = 2_000_000):
    """Levenshtein scores of each row's top candidates by Jaccard (the approx mode)."""
    from rclrec.similarity.measures import levenshtein_pairs, levenshtein_strings

    candidates = spec.approx_candidates or 4 * spec.max_neighbours
    cand = build_index(inputs, targets, IndexSpec(
        "jaccard", alpha=1.0, max_neighbours=candidates,
        exclude_same_target=spec.exclude_same_target),
        build=BuildOptions(engine="numpy" if build.engine == "numpy" else "auto"))
    strings = levenshtein_strings(inputs)
    lengths = np.fromiter((len(s) for s in inputs), dtype=np.int64, count=len(inputs))
    degrees = cand.degrees()
    for start, stop in row_blocks(degrees, pairs_per_block):
        lo, hi = cand.indptr[start], cand.indptr[stop]
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), degrees[start:stop])
        cols = cand.indices[lo:hi].astype(np.int64)
        s = levenshtein_pairs(strings, lengths, rows, cols, build.workers)
        keep = s > 0
        yield ScoreBlock(start, stop, rows[keep], cols[keep], s[keep])


def build_index(inputs: Sequence[np.ndarray], targets: np.ndarray,
                spec: IndexSpec, *, representations: np.ndarray | None = None,
                cache_dir: str | os.PathLike | None = None, data_hash: str | None = None,
                build: BuildOptions | None = None) -> SimilarityIndex:
    """Build (or load from the cache) the weak-positive index WP_u of every sequence.

    Args:
        inputs: N int arrays, the input items of each training sequence (train[:-1]).
        targets: (N,) int target of each sequence (train[-1]).
        spec: which neighbours to keep (metric, alpha, selection, ...): :class:`IndexSpec`.
        representations: (N, d) sequence representations, for the semantic metric.
        cache_dir: if set, the index is read from / written to a file keyed by the data hash,
            the metric and every setting of ``spec`` (semantic indexes are never cached).
        data_hash: precomputed content hash (e.g. ``SequenceDataset.content_hash()``); by default
            a hash of ``inputs`` and ``targets``.
        build: engine, memory and parallelism (:class:`BuildOptions`, its defaults if None);
            they do not change the result.

    Returns:
        The :class:`SimilarityIndex`; ``info["cache_hit"]`` says whether it was loaded.
    """
    import time

    build = build or BuildOptions()
    metric = spec.metric
    params = check_metric(metric, {**spec.params(), **(
        {"representations": representations} if representations is not None else {})})
    use_numba = (build.engine != "numpy" and not spec.approx and metric in FUSED_METRICS
                 and HAVE_NUMBA)
    if spec.candidate_budget is not None and (spec.candidate_budget < 1 or not use_numba):
        raise ConfigError(f"candidate_budget must be >= 1 and needs the numba engine and "
                          f"metric {', '.join(FUSED_METRICS)} (got {spec.candidate_budget}, "
                          f"{metric!r}, engine {build.engine!r})")
    if (build.engine == "numba" or build.client is not None) and not use_numba:
        raise ConfigError(f"the numba engine (needed by a Dask client too) is not available "
                          f"for metric {metric!r} "
                          f"(approx={spec.approx}, numba installed: {HAVE_NUMBA})")
    targets = np.asarray(targets, dtype=np.int64)
    n = len(inputs)
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} inputs")

    options = spec.cache_options()
    path = None
    if cache_dir is not None and metric != "semantic":
        path = cache_path(cache_dir, data_hash or sequences_hash(inputs, targets), metric, options)
        if path.exists():
            index = SimilarityIndex.load(path)
            if index.num_rows != n:
                raise CorruptFile(f"{path}: an index of {index.num_rows} sequences, not {n}; "
                                  f"remove it to build it again")
            index.info["cache_hit"] = True
            index.info["cache_path"] = str(path)
            return index

    t0 = time.perf_counter()
    info: dict[str, Any] = {"metric": metric, **options, "sequences": n}
    k = row_k(spec.alpha, n, spec.max_neighbours)
    if spec.selection == "row":
        info["k"] = k
    if use_numba:
        parts, extra = _fused_parts(inputs, targets, spec, k, build)
        info.update(extra)
    else:
        info["engine"] = "numpy"
        parts = _scipy_parts(inputs, targets, spec, params, k, build, info)
    info["seconds"] = time.perf_counter() - t0
    index = _to_index(parts, n, metric, info)
    index.info["neighbours_total"] = index.nnz
    if path is not None:
        index.save(path)
        index.info["cache_path"] = str(path)
    index.info["cache_hit"] = False
    return index


def _scipy_parts(inputs, targets: np.ndarray, spec: IndexSpec, params: dict, k: int,
                 build: BuildOptions, info: dict) -> list:
    """Row or global selection from SciPy score blocks (every metric; the reference path)."""
    def blocks() -> Iterable[ScoreBlock]:
        if spec.approx:
            src = _levenshtein_candidate_blocks(inputs, targets, spec, build)
        else:
            src = score_blocks(inputs, spec.metric, params=params,
                               block_entries=build.block_entries, workers=build.workers)
        for b in _progress(src, len(inputs), build.show_progress, f"{spec.metric} index"):
            yield _filter(b, targets, spec.exclude_same_target)

    parts = []
    if spec.selection == "row":
        for b in blocks():
            keep = top_k_per_row(b.rows, b.cols, b.scores, k)
            parts.append((b.rows[keep], b.cols[keep].astype(np.int32), b.scores[keep]))
        return parts
    hist_hi = np.zeros(NUM_HI_BINS, dtype=np.int64)
    for b in blocks():
        hist_hi += np.bincount(b.scores.view(np.uint32) >> 12, minlength=len(hist_hi))
        keep = top_k_per_row(b.rows, b.cols, b.scores, spec.max_neighbours)
        parts.append((b.rows[keep], b.cols[keep].astype(np.int32), b.scores[keep]))
    parts, _ = _apply_threshold(parts, hist_hi, targets, spec, _numpy_lo_hist(blocks), info)
    return parts


def index_for_config(inputs: Sequence[np.ndarray], targets: np.ndarray, rcl: Any, *,
                     representations: np.ndarray | None = None,
                     cache_dir: str | os.PathLike | None = None, show_progress: bool = False):
    """The weak-positive index a run's RCL section asks for.

    Args:
        inputs, targets: the contrast units (rclrec.data.split.contrast_units).
        rcl: the RCL section of the config.
        representations: (N, D) sequence representations, read by the semantic metric only.
        cache_dir: the index cache [:func:`rclrec.similarity.index.default_cache_dir`]; a
            semantic index is never cached (it follows the encoder).
    """
    spec = spec_of(rcl)
    semantic = spec.metric == "semantic"
    return build_index(inputs, targets, spec,
                       representations=representations if semantic else None,
                       cache_dir=None if semantic else (cache_dir or default_cache_dir()),
                       build=BuildOptions(show_progress=show_progress))
