"""How similar a dataset's sequences are: Figure 1 of the paper, and where top-alpha cuts.

Figure 1 counts unordered pairs (each once) of sequences with different targets, by similarity
bin. :func:`alpha_cut` tells for which rows the weak-positive selection "top alpha of the row"
keeps fewer than all similar sequences: when a row has fewer non-zero-similarity candidates than
``ceil(alpha * (N - 1))``, every alpha of the paper's grid keeps them all and the sweep cannot
change that row. Both scan the same blocked sparse products as the index, without N^2 memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rclrec.config import ConfigError
from rclrec.similarity.index import row_k
from rclrec.similarity.measures import score_blocks

DEFAULT_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def similarity_profile(inputs: Sequence[np.ndarray], targets: np.ndarray, metric: str,
                       bins: Sequence[float] = DEFAULT_BINS, **params) -> tuple[dict, np.ndarray]:
    """Figure 1's histogram and the weak candidates per row, in one scan of the blocks.

    Args:
        inputs: N int arrays (input items of each training sequence).
        targets: (N,) int targets.
        metric: jaccard | tfidf | ngram | levenshtein | semantic.
        bins: increasing edges; bin i is [bins[i], bins[i + 1]), the last one closed.
        **params: metric parameters (``n`` for ngram, ``representations`` for semantic).

    Returns:
        ({"metric", "bins": [[lo, hi], ...], "counts": [...], "pairs_different_target": int},
        (N,) number of different-target sequences with non-zero similarity to each sequence:
        a row's weak-positive candidates before the top-alpha cut, docs/METHOD.md section 3).
    """
    targets = np.asarray(targets, dtype=np.int64)
    edges = np.asarray(bins, dtype=np.float64)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"bins must be at least two increasing edges, got {bins}")
    edges32 = edges.astype(np.float32)  # compare in float32, where the scores live
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    candidates = np.zeros(len(targets), dtype=np.int64)
    for b in score_blocks(inputs, metric, params=params):
        different = (b.rows != b.cols) & (targets[b.rows] != targets[b.cols])
        candidates += np.bincount(b.rows[different], minlength=len(candidates))
        keep = different & (b.rows < b.cols) & (b.scores >= edges32[0])
        s = b.scores[keep]
        s = s[s <= edges32[-1]]
        idx = np.minimum(np.searchsorted(edges32, s, side="right") - 1, len(counts) - 1)
        counts += np.bincount(idx, minlength=len(counts))
    _, group = np.unique(targets, return_counts=True)
    n = len(targets)
    pairs = n * (n - 1) // 2 - int((group * (group - 1) // 2).sum())
    hist = {"metric": metric, "bins": [[float(lo), float(hi)] for lo, hi in
                                       zip(edges[:-1], edges[1:], strict=True)],
            "counts": counts.tolist(), "pairs_different_target": pairs,
            **({"n": params["n"]} if "n" in params else {})}
    return hist, candidates


def different_target_pair_histogram(inputs: Sequence[np.ndarray], targets: np.ndarray,
                                    metric: str, bins: Sequence[float] = DEFAULT_BINS,
                                    **params) -> dict:
    """Counts of different-target pairs per similarity bin (:func:`similarity_profile`)."""
    return similarity_profile(inputs, targets, metric, bins, **params)[0]


def weak_candidate_counts(inputs: Sequence[np.ndarray], targets: np.ndarray, metric: str,
                          **params) -> np.ndarray:
    """(N,) weak candidates per row before the top-alpha cut (:func:`similarity_profile`)."""
    return similarity_profile(inputs, targets, metric, **params)[1]


def alpha_cut(counts: np.ndarray, alphas: Sequence[float]) -> dict:
    """Per alpha: k = ceil(alpha (N - 1)) and the share of rows with more candidates than k.

    Args:
        counts: (N,) weak candidates per row (:func:`weak_candidate_counts`).
        alphas: the alphas to examine.

    Returns:
        {"alphas", "k", "share_cut", "candidates": {"share_none", "median", "p99", "max"}}:
        ``share_cut[i]`` is the share of rows whose weak set alpha ``alphas[i]`` makes smaller
        than all their candidates (no cap on neighbours applied).
    """
    counts = np.asarray(counts)
    n = len(counts)
    ks = [row_k(a, n, n) for a in alphas]
    return {"alphas": [float(a) for a in alphas], "k": ks,
            "share_cut": [float((counts > k).mean()) for k in ks],
            "candidates": {"share_none": float((counts == 0).mean()),
                           "median": float(np.median(counts)),
                           "p99": float(np.percentile(counts, 99)), "max": int(counts.max())}}


def plot_histogram(result: dict, path: str | os.PathLike) -> None:
    """Bar chart of one histogram result, or of ``{metric: result}`` side by side, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rclrec.files import atomic_write

    results = {result["metric"]: result} if "counts" in result else dict(result)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(results), 1)
    labels: list[str] = []
    for j, (name, res) in enumerate(results.items()):
        labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in res["bins"]]
        x = np.arange(len(labels)) + (j - (len(results) - 1) / 2) * width
        ax.bar(x, res["counts"], width=width, label=name)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_xlabel("similarity")
    ax.set_ylabel("different-target pairs")
    ax.set_yscale("symlog")
    ax.legend()
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=120)

    atomic_write(path, write)
    plt.close(fig)
