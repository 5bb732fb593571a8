"""The synthetic Markov data: deterministic, well-formed, and with learnable structure."""

from __future__ import annotations

import numpy as np
import pytest

from rclrec.data.split import leave_one_out
from rclrec.data.synthetic import make_synthetic, markov_successors


def test_same_seed_same_data_other_seed_other_data():
    assert make_synthetic(seed=3).content_hash() == make_synthetic(seed=3).content_hash()
    assert make_synthetic(seed=3).content_hash() != make_synthetic(seed=4).content_hash()


def test_shape_and_ranges():
    ds = make_synthetic(num_users=50, num_items=20, min_len=4, max_len=9, seed=1)
    assert ds.num_users == 50 and ds.num_items == 20
    lengths = [len(s) for s in ds.sequences]
    assert min(lengths) >= 4 and max(lengths) <= 9
    items = np.concatenate(ds.sequences)
    assert items.min() >= 1 and items.max() <= 20
    assert ds.item_ids == [str(i) for i in range(1, 21)]
    leave_one_out(ds)  # every user is long enough


def test_successors_are_distinct_and_not_the_item():
    successors = markov_successors(10, seed=2)
    for item in range(1, 11):
        row = successors[item]
        assert len(set(row.tolist())) == len(row)
        assert item not in row and row.min() >= 1 and row.max() <= 10


def test_true_transition_beats_popularity():
    ds = make_synthetic(seed=0)
    successors = markov_successors(ds.num_items, seed=0)
    history = np.concatenate([s[:-1] for s in ds.sequences])
    most_popular = np.bincount(history, minlength=ds.num_items + 1)[1:].argmax() + 1
    last = np.array([s[-1] for s in ds.sequences])
    before_last = np.array([s[-2] for s in ds.sequences])
    markov_hits = np.mean(successors[before_last, 0] == last)
    popularity_hits = np.mean(last == most_popular)
    # Expected about 0.9 * 0.6 = 0.54 versus about 1 / num_items.
    assert markov_hits > 0.4
    assert markov_hits > 5 * popularity_hits


def test_full_noise_has_no_structure():
    ds = make_synthetic(noise=1.0, seed=0)
    successors = markov_successors(ds.num_items, seed=0)
    last = np.array([s[-1] for s in ds.sequences])
    before_last = np.array([s[-2] for s in ds.sequences])
    assert np.mean(successors[before_last, 0] == last) < 0.05


@pytest.mark.parametrize("kwargs", [{"min_len": 2}, {"min_len": 10, "max_len": 5},
                                    {"noise": 1.5}, {"num_items": 3}, {"num_users": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**kwargs)
