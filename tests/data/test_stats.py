"""Dataset statistics on a tiny hand-computed data set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rclrec.data.dataset import SequenceDataset
from rclrec.data.stats import dataset_stats


def tiny() -> SequenceDataset:
    # Training sequences (seq[:-2]) and their targets (last training item):
    #   [1, 2] -> 2,  [3, 2] -> 2,  [4] -> 4,  [5, 5, 3] -> 3
    # Target 2 is shared by two users; targets 4 and 3 belong to one user each.
    sequences = [[1, 2, 3, 4], [3, 2, 5, 1], [4, 1, 2], [5, 5, 3, 1, 2]]
    return SequenceDataset([np.array(s, dtype=np.int64) for s in sequences], num_items=5)


def test_hand_computed_stats():
    stats = dataset_stats(tiny())
    assert stats["users"] == 4
    assert stats["items"] == 5
    assert stats["interactions"] == 16
    assert stats["avg_length"] == pytest.approx(4.0)
    assert stats["sparsity"] == pytest.approx(1 - 16 / 20)
    assert (stats["min_length"], stats["median_length"], stats["max_length"]) == (3, 4.0, 5)
    assert stats["share_without_same_target"] == pytest.approx(0.5)


def test_all_targets_distinct_or_all_shared():
    distinct = SequenceDataset([np.array([1, 2, 3]), np.array([2, 3, 1])], num_items=3)
    assert dataset_stats(distinct)["share_without_same_target"] == 1.0
    shared = SequenceDataset([np.array([1, 2, 3]), np.array([1, 3, 2])], num_items=3)
    assert dataset_stats(shared)["share_without_same_target"] == 0.0


def test_stats_are_json_serialisable():
    json.dumps(dataset_stats(tiny()))
