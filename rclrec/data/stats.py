"""Data set statistics (Table 1 of the paper, plus the share of sequences without a same-target
neighbour, the motivation of RCL in section 1)."""

from __future__ import annotations

import numpy as np

from rclrec.data.dataset import SequenceDataset
from rclrec.data.split import MIN_LENGTH


def dataset_stats(ds: SequenceDataset) -> dict:
    """Size, sparsity and length statistics of a data set.

    ``share_without_same_target`` uses the contrast units of RCL: the leave-one-out training
    sequence of a user is ``seq[:-2]`` and its target is its last item. It is the share of
    training sequences whose target is the target of no OTHER training sequence, i.e. that
    have no positive for supervised contrastive learning. Users shorter than 3 have no
    training target and are left out of that share.

    Returns:
        A JSON-serialisable dict: users, items (the catalogue size ``num_items``),
        interactions, avg_length, min_length, median_length, max_length, sparsity
        (1 - interactions / (users * items)) and share_without_same_target.
    """
    lengths = np.array([len(s) for s in ds.sequences], dtype=np.int64)
    interactions = int(lengths.sum())
    targets = np.array([s[-3] for s in ds.sequences if len(s) >= MIN_LENGTH], dtype=np.int64)
    if len(targets):
        target_counts = np.bincount(targets, minlength=ds.num_items + 1)
        share = float(np.mean(target_counts[targets] == 1))
    else:
        share = float("nan")
    return {
        "users": ds.num_users,
        "items": int(ds.num_items),
        "interactions": interactions,
        "avg_length": float(lengths.mean()),
        "min_length": int(lengths.min()),
        "median_length": float(np.median(lengths)),
        "max_length": int(lengths.max()),
        "sparsity": 1.0 - interactions / (ds.num_users * ds.num_items),
        "share_without_same_target": share,
    }
