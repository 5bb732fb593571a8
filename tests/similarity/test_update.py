"""Incremental update of the index: equal to a full rebuild on the new data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.similarity import IndexSpec, build_index
from rclrec.similarity.update import update_index


def assert_same(a, b) -> None:
    for name in ("indptr", "indices", "scores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def grow(rng, inputs, targets, n_changed, n_new, items):
    """Extend some sequences (the old target joins the input, a new target follows, as in a
    feed) and append new ones; returns the new data and the changed ids."""
    inputs, targets = list(inputs), targets.copy()
    changed = rng.choice(len(inputs), size=n_changed, replace=False)
    for i in changed:
        inputs[i] = np.r_[inputs[i], targets[i]]
        targets[i] = rng.integers(1, items + 1)
    for _ in range(n_new):
        inputs.append(rng.integers(1, items + 1, size=rng.integers(0, 8)))
        targets = np.r_[targets, rng.integers(1, items + 1)]
    return inputs, targets, changed


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 40), n_changed=st.integers(0, 5),
       n_new=st.integers(0, 6), items=st.integers(2, 12), alpha=st.sampled_from([0.1, 0.3, 1.0]),
       cap=st.integers(1, 8), metric=st.sampled_from(["jaccard", "ngram"]),
       exclude=st.booleans())
def test_update_equals_full_rebuild(seed, n, n_changed, n_new, items, alpha, cap, metric,
                                    exclude):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(1, items + 1, size=rng.integers(0, 8)) for _ in range(n)]
    targets = rng.integers(1, items + 1, size=n)
    spec = IndexSpec(metric, alpha=alpha, max_neighbours=cap, exclude_same_target=exclude)
    old = build_index(inputs, targets, spec)
    new_inputs, new_targets, changed = grow(rng, inputs, targets, min(n_changed, n), n_new,
                                            items)
    updated = update_index(old, new_inputs, new_targets, changed)
    assert_same(updated, build_index(new_inputs, new_targets, spec))


@pytest.mark.parametrize("seed", range(4))
def test_update_rescores_few_rows_on_larger_data(seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(1, 200, size=rng.integers(1, 15)) for _ in range(2000)]
    targets = rng.integers(1, 200, size=2000)
    old = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05, max_neighbours=20))
    new_inputs, new_targets, changed = grow(rng, inputs, targets, 10, 20, 199)
    updated = update_index(old, new_inputs, new_targets, changed)
    assert_same(updated, build_index(new_inputs, new_targets, IndexSpec("jaccard", alpha=0.05,
                                                                        max_neighbours=20)))
    assert updated.info["rows_rescored"] < len(new_inputs) // 2  # not a full rebuild


def test_update_refuses_what_it_cannot_do():
    inputs = [np.array([1, 2]), np.array([2, 3]), np.array([3])]
    targets = np.array([1, 2, 3])
    for kwargs in ({"metric": "tfidf"}, {"selection": "global"},
                   {"candidate_budget": 3}):
        index = build_index(inputs, targets, IndexSpec(**{"metric": "jaccard", **kwargs}))
        with pytest.raises(ValueError, match="incremental update"):
            update_index(index, inputs, targets)
    index = build_index(inputs, targets, IndexSpec("jaccard"))
    with pytest.raises(ValueError, match="old rows"):
        update_index(index, inputs[:2], targets[:2])
    with pytest.raises(ValueError, match="changed rows"):
        update_index(index, inputs, targets, [5])
