"""Strong / weak samplers (Eq. 5, Eq. 10) and the pair look-up."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.similarity import SimilarityIndex, StrongSampler, WeakSampler, pair_similarity


def small_index() -> SimilarityIndex:
    # row 0: {1: 0.6, 2: 0.2}; row 1: {}; row 2: {0: 0.5}; row 3: {2: 1.0}
    return SimilarityIndex(np.array([0, 2, 2, 3, 4]), np.array([1, 2, 0, 2], np.int32),
                           np.array([0.6, 0.2, 0.5, 1.0], np.float32))


@settings(max_examples=40, deadline=None)
@given(targets=st.lists(st.integers(0, 5), min_size=1, max_size=40), seed=st.integers(0, 99))
def test_strong_sampler_returns_other_same_target_or_minus_one(targets, seed):
    targets = np.array(targets)
    sampler = StrongSampler(targets, seed=seed)
    centres = np.tile(np.arange(len(targets)), 5)
    got = sampler.sample(centres)
    counts = np.array([(targets == t).sum() - 1 for t in targets])
    assert np.array_equal(sampler.counts(), counts)
    none = counts[centres] == 0
    assert np.all(got[none] == -1)
    assert np.all(got[~none] != centres[~none])
    assert np.all(targets[got[~none]] == targets[centres[~none]])


def test_strong_sampler_is_uniform_and_seeded():
    targets = np.array([7, 7, 7, 7, 3])
    draws = StrongSampler(targets, seed=0).sample(np.zeros(30_000, dtype=int))
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq[1:4], 1 / 3, atol=0.02)
    assert freq[0] == 0 and freq[4] == 0
    again = StrongSampler(targets, seed=0).sample(np.zeros(30_000, dtype=int))
    assert np.array_equal(draws, again)


def test_weak_sampler_is_proportional_to_similarity():
    sampler = WeakSampler(small_index(), seed=0)
    draws = sampler.sample(np.zeros(40_000, dtype=int))
    assert set(np.unique(draws)) == {1, 2}
    np.testing.assert_allclose((draws == 1).mean(), 0.75, atol=0.01)  # 0.6 / (0.6 + 0.2)
    got = sampler.sample(np.array([1, 2, 3, 1]))
    assert got.tolist() == [-1, 0, 2, -1]


def test_weak_sampler_on_empty_index():
    empty = SimilarityIndex(np.zeros(4, np.int64), np.zeros(0, np.int32),
                            np.zeros(0, np.float32))
    assert WeakSampler(empty).sample(np.array([0, 2])).tolist() == [-1, -1]


def test_pair_similarity_dense_lookup():
    index = small_index()
    out = pair_similarity(index, np.array([0, 2, 1]), np.array([2, 1, 0, -1, 2]))
    want = np.array([[0.2, 0.6, 0.0, 0.0, 0.2], [0.0, 0.0, 0.5, 0.0, 0.0], [0.0] * 5])
    np.testing.assert_allclose(out, want)
    assert out.dtype == np.float32 and out.shape == (3, 5)
    sym = pair_similarity(index, np.array([0]), np.array([2, 3]), symmetric=True)
    np.testing.assert_allclose(sym, [[0.5, 0.0]])  # max(s(0,2)=0.2, s(2,0)=0.5)
