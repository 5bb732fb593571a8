"""Brute-force all-pairs reference for the similarity index (small N only)."""

from __future__ import annotations

import math

import numpy as np


def levenshtein(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def similarity_matrix(inputs, metric: str, n: int = 2, reps=None) -> np.ndarray:
    """(N, N) float32 similarities with the textbook formulas, pair by pair."""
    size = len(inputs)
    seqs = [list(map(int, s)) for s in inputs]
    out = np.zeros((size, size), dtype=np.float32)
    if metric == "tfidf":
        df: dict[int, int] = {}
        for s in seqs:
            for v in set(s):
                df[v] = df.get(v, 0) + 1
        vecs = []
        for s in seqs:
            w = {v: s.count(v) * math.log(size / df[v]) for v in set(s)}
            norm = math.sqrt(sum(x * x for x in w.values()))
            vecs.append({v: x / norm for v, x in w.items()} if norm > 0 else {})
    for i in range(size):
        for j in range(size):
            a, b = seqs[i], seqs[j]
            if metric in ("jaccard", "ngram"):
                k = 1 if metric == "jaccard" else n
                sa = {tuple(a[p:p + k]) for p in range(len(a) - k + 1)}
                sb = {tuple(b[p:p + k]) for p in range(len(b) - k + 1)}
                union = len(sa | sb)
                out[i, j] = len(sa & sb) / union if union else 0.0
            elif metric == "tfidf":
                out[i, j] = sum(x * vecs[j].get(v, 0.0) for v, x in vecs[i].items())
            elif metric == "levenshtein":
                longest = max(len(a), len(b))
                if a and b:
                    out[i, j] = 1.0 - levenshtein(a, b) / longest
            elif metric == "semantic":
                x, y = reps[i], reps[j]
                den = np.linalg.norm(x) * np.linalg.norm(y)
                out[i, j] = float(np.dot(x, y) / den) if den > 0 else 0.0
    return out


def select(sim: np.ndarray, targets: np.ndarray, alpha: float, selection: str,
           max_neighbours: int, exclude_same_target: bool) -> tuple[list[set], float | None]:
    """Neighbour sets per row (and the global threshold), straight from the definition."""
    size = len(sim)
    eligible = ~np.eye(size, dtype=bool)
    if exclude_same_target:
        eligible &= targets[:, None] != targets[None, :]
    positive = eligible & (sim > 0)
    if selection == "row":
        k = min(math.ceil(alpha * (size - 1) - 1e-9), max_neighbours)
        sets = []
        for i in range(size):
            cand = [j for j in range(size) if positive[i, j]]
            cand.sort(key=lambda j: (-sim[i, j], j))
            sets.append(set(cand[:k]))
        return sets, None
    values = np.sort(np.where(eligible, sim, 0)[eligible])[::-1]
    p = max(1, math.ceil(alpha * eligible.sum() - 1e-9))
    t = float(values[p - 1]) if p <= len(values) else 0.0
    sets = []
    for i in range(size):
        cand = [j for j in range(size) if positive[i, j] and sim[i, j] >= t]
        cand.sort(key=lambda j: (-sim[i, j], j))
        sets.append(set(cand[:max_neighbours]))
    return sets, t
