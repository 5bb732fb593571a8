"""Ranking metrics from the 0-based rank of the single target item.

Ties against the target are broken at random, and the metrics are the exact expectation over
that random order (docs/EVALUATION.md): a target tied with ``t`` other items and beaten by ``g``
items sits at each rank ``g .. g + t`` with probability ``1 / (t + 1)``. A model that scores
every item alike therefore gets HR@K = K / (number of rankable items), not 1.
"""

from __future__ import annotations

import numpy as np


def metric_names(ks: tuple[int, ...]) -> list[str]:
    return [f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in ks]


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = (5, 10, 20),
                       ties: np.ndarray | None = None) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K averaged over users.

    Args:
        ranks: (N,) how many ranked items score strictly above each user's target (0 = top).
        ties: (N,) how many other ranked items score exactly the target's score; None = 0.

    Returns:
        {"HR@5": ..., "NDCG@5": ..., "MRR@5": ..., ...}; for an untied target at rank r,
        HR@K = [r < K], NDCG@K = [r < K] / log2(r + 2), MRR@K = [r < K] / (r + 1); a tied
        target gets the mean of these over the ranks it may take.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size == 0:
        raise ValueError("no ranks to average")
    ties = np.zeros_like(ranks) if ties is None else np.asarray(ties, dtype=np.int64)
    positions = ties + 1.0  # how many ranks the target may take
    top = max(ks)
    # cum[m] = sum over ranks r < m of each metric's gain; gains past the largest K are 0.
    r = np.arange(top, dtype=np.float64)
    cum_ndcg = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(r + 2.0))])
    cum_mrr = np.concatenate([[0.0], np.cumsum(1.0 / (r + 1.0))])
    out = {}
    for k in ks:
        lo = np.minimum(ranks, k)
        hi = np.minimum(ranks + ties + 1, k)
        out[f"HR@{k}"] = float(((hi - lo) / positions).mean())
        out[f"NDCG@{k}"] = float(((cum_ndcg[hi] - cum_ndcg[lo]) / positions).mean())
        out[f"MRR@{k}"] = float(((cum_mrr[hi] - cum_mrr[lo]) / positions).mean())
    return out
