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
