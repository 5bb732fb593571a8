"""Synthetic sequences with planted sequential structure (a sparse first-order Markov chain).

Each item has a few likely successors; the next item is drawn from them, or uniformly with
probability ``noise``. The stationary popularity is nearly flat, so a model must learn the
transitions to do well: predicting the most likely successor of the last item beats
predicting the most popular item by a wide margin (used by tests and learning checks).
"""

from __future__ import annotations

import numpy as np

from rclrec.data.dataset import SequenceDataset
from rclrec.data.split import MIN_LENGTH

# Probability of the 1st, 2nd and 3rd likely successor (before noise).
SUCCESSOR_PROBS = np.array([0.6, 0.3, 0.1])


def markov_successors(num_items: int, seed: int = 0) -> np.ndarray:
    """The likely successors of every item, most likely first.

    Returns:
        (num_items + 1, S) int64; row i holds the successors of item i (row 0, padding, is
        unused). Successors are distinct and never the item itself.
    """
    if num_items <= len(SUCCESSOR_PROBS):
        raise ValueError(f"num_items must be > {len(SUCCESSOR_PROBS)}, got {num_items}")
    # A generator of its own, so the chain does not depend on how many sequences are drawn.
    rng = np.random.default_rng([seed, 0])
    successors = np.zeros((num_items + 1, len(SUCCESSOR_PROBS)), dtype=np.int64)
    for item in range(1, num_items + 1):
        # Draw from the other items: ids 1..num_items - 1, shifted past the item itself.
        picks = rng.choice(num_items - 1, size=len(SUCCESSOR_PROBS), replace=False) + 1
        successors[item] = np.where(picks >= item, picks + 1, picks)
    return successors


def make_synthetic(num_users: int = 500, num_items: int = 100, min_len: int = 5,
                   max_len: int = 30, noise: float = 0.1, seed: int = 0) -> SequenceDataset:
    """Seeded Markov-chain sequences; the same arguments always give the same data set.

    Args:
        num_users: number of sequences.
        num_items: catalogue size M; ids are 1..M.
        min_len: shortest sequence (at least 3, for leave-one-out).
        max_len: longest sequence; lengths are uniform in [min_len, max_len].
        noise: probability that a step ignores the chain and picks a uniform item.
        seed: random seed.

    Returns:
        A dataset named ``synthetic-<seed>``; the chain is ``markov_successors(num_items, seed)``.
    """
    if num_users < 1:
        raise ValueError(f"num_users must be >= 1, got {num_users}")
    if not MIN_LENGTH <= min_len <= max_len:
        raise ValueError(f"need {MIN_LENGTH} <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    successors = markov_successors(num_items, seed)
    rng = np.random.default_rng([seed, 1])
    lengths = rng.integers(min_len, max_len + 1, size=num_users)

    # All users advance one step at a time; each sequence is cut to its length afterwards.
    walks = np.zeros((num_users, max_len), dtype=np.int64)
    walks[:, 0] = rng.integers(1, num_items + 1, size=num_users)
    for step in range(1, max_len):
        rank = rng.choice(len(SUCCESSOR_PROBS), size=num_users, p=SUCCESSOR_PROBS)
        follow = successors[walks[:, step - 1], rank]
        uniform = rng.integers(1, num_items + 1, size=num_users)
        walks[:, step] = np.where(rng.random(num_users) < noise, uniform, follow)

    sequences = [walks[u, :n].copy() for u, n in enumerate(lengths.tolist())]
    return SequenceDataset(sequences=sequences, num_items=num_items, name=f"synthetic-{seed}",
                           user_ids=[str(u) for u in range(1, num_users + 1)],
                           item_ids=[str(i) for i in range(1, num_items + 1)])
