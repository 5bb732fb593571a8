"""The CPU kernel of the ranking counts and the tensor-op version agree exactly."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.eval.ranking import (
    NonFiniteScores,
    _cpu_block_counts,
    _torch_block_counts,
)


def tie_heavy_block(seed: int, start: int):
    rng = np.random.default_rng(seed)
    b, w = 7, 13
    block = torch.from_numpy(rng.integers(0, 3, size=(b, w)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(start, start + w, size=b))
    target_scores = block[torch.arange(b), targets - start][:, None]
    # Histories reach outside the block and repeat items; the padding id 0 among them.
    history = torch.from_numpy(rng.integers(0, start + w + 5, size=(b, 9)))
    return block, target_scores, history, targets


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 20]), st.booleans())
def test_kernel_counts_equal_the_tensor_ops(seed, start, with_history):
    block, target_scores, history, targets = tie_heavy_block(seed, start)
    history, targets = (history, targets) if with_history else (None, None)
    want = _torch_block_counts(block, start, target_scores, history, targets)
    got = _cpu_block_counts(block, start, target_scores, history, targets)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_kernel_reads_a_column_slice_of_a_wider_product():
    block, target_scores, history, targets = tie_heavy_block(3, 0)
    wide = torch.cat([block, torch.full((block.shape[0], 4), 9.0)], dim=1)
    got = _cpu_block_counts(wide[:, :block.shape[1]], 0, target_scores, history, targets)
    want = _torch_block_counts(block, 0, target_scores, history, targets)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -float("inf")])
def test_kernel_refuses_non_finite_scores_but_not_in_the_padding_column(fill):
    block, target_scores, history, targets = tie_heavy_block(5, 0)
    padded = block.clone()
    padded[:, 0] = fill  # column 0 is the padding item: never ranked, never checked
    _cpu_block_counts(padded, 0, target_scores, history, targets)
    block[2, 7] = fill
    with pytest.raises(NonFiniteScores):
        _cpu_block_counts(block, 0, target_scores, history, targets)


def wide_tied_block(seed: int, b: int, w: int, start: int):
    """Scores from a few values only (many exact ties), any width: the kernel's vector loop and
    its scalar remainder both run."""
    rng = np.random.default_rng(seed)
    block = torch.from_numpy(rng.integers(-2, 3, size=(b, w)).astype(np.float32) / 4)
    targets = torch.from_numpy(rng.integers(start, start + w, size=b))
    target_scores = block[torch.arange(b), targets - start][:, None]
    history = torch.from_numpy(rng.integers(0, start + w + 5, size=(b, 11)))
    history[:, :2] = targets[:, None]  # the target in its own history, twice
    return block, target_scores, history, targets


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 150), st.integers(1, 5),
       st.sampled_from([0, 1, 37]), st.booleans())
def test_kernel_counts_any_width_like_the_tensor_ops(seed, w, b, start, with_history):
    block, target_scores, history, targets = wide_tied_block(seed, b, w, start)
    history, targets = (history, targets) if with_history else (None, None)
    want = _torch_block_counts(block, start, target_scores, history, targets)
    got = _cpu_block_counts(block, start, target_scores, history, targets)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("w", [1037, 4099])
def test_kernel_counts_long_rows_like_the_tensor_ops(w):
    block, target_scores, history, targets = wide_tied_block(11, 9, w, 0)
    want = _torch_block_counts(block, 0, target_scores, history, targets)
    got = _cpu_block_counts(block, 0, target_scores, history, targets)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 90),
       st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_kernel_finds_a_non_finite_score_anywhere_in_a_row(seed, w, fill):
    rng = np.random.default_rng(seed)
    block, target_scores, history, targets = wide_tied_block(seed, 3, w, 0)
    block[int(rng.integers(0, 3)), int(rng.integers(1, w))] = fill  # column 0 is padding
    with pytest.raises(NonFiniteScores):
        _cpu_block_counts(block, 0, target_scores, history, targets)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rows_are_shared_among_torchs_thread_count_with_the_same_counts(monkeypatch, threads):
    from rclrec.eval import ranking

    block, target_scores, history, targets = wide_tied_block(7, 10, 300, 0)
    want = _torch_block_counts(block, 0, target_scores, history, targets)
    calls = []
    kernel = ranking.count_above_and_alike

    def spy(scores, *args):
        calls.append(scores.shape[0])
        return kernel(scores, *args)

    monkeypatch.setattr(ranking, "count_above_and_alike", spy)
    monkeypatch.setattr(ranking, "MIN_SCORES_PER_THREAD", 100)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _cpu_block_counts(block, 0, target_scores, history, targets)
    finally:
        torch.set_num_threads(before)
    assert sorted(calls) == sorted({1: [10], 2: [5, 5], 3: [3, 3, 4]}[threads])
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_a_small_block_is_counted_by_one_thread(monkeypatch):
    from rclrec.eval import ranking

    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert ranking.counting_threads(ranking.MIN_SCORES_PER_THREAD * 3) == 3
    assert ranking.counting_threads(ranking.MIN_SCORES_PER_THREAD * 20) == 8
    assert ranking.counting_threads(5) == 1


def test_a_non_finite_score_in_another_threads_rows_is_an_error(monkeypatch):
    from rclrec.eval import ranking

    block, target_scores, history, targets = wide_tied_block(8, 10, 300, 0)
    block[9, 200] = float("nan")  # in the last thread's rows
    monkeypatch.setattr(ranking, "counting_threads", lambda scores: 3)
    with pytest.raises(NonFiniteScores):
        _cpu_block_counts(block, 0, target_scores, history, targets)
