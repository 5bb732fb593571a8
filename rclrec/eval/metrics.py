"""Ranking metrics from the 0-based rank of the single target item."""

from __future__ import annotations

import numpy as np


def metric_names(ks: tuple[int, ...]) -> list[str]:
    return [f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in ks]


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K averaged over users.

    Args:
        ranks: (N,) 0-based rank of each user's target among the ranked items (0 = top).

    Returns:
        {"HR@5": ..., "NDCG@5": ..., "MRR@5": ..., ...}; HR@K = [rank < K],
        NDCG@K = [rank < K] / log2(rank + 2), MRR@K = [rank < K] / (rank + 1).
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to average")
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"MRR@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out
