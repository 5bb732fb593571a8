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
    history_columns,
)


def tie_heavy_block(seed: int, start: int):
    rng = np.random.default_rng(seed)
    b, w = 7, 13
    block = torch.from_numpy(rng.integers(0, 3, size=(b, w)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(start, start + w, size=b))
    target_scores = block[torch.arange(b), targets - start][:, None]
    # Histories reach outside the block and repeat items; the padding id 0 among them.
    history = torch.from_numpy(rng.integers(0, start + w + 5, size=(b, 9)))
    return block, target_scores, history_columns(history, targets)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 20]), st.booleans())
def test_kernel_counts_equal_the_tensor_ops(seed, start, with_history):
    block, target_scores, columns = tie_heavy_block(seed, start)
    columns = columns if with_history else None
    want = _torch_block_counts(block, start, target_scores, columns)
    got = _cpu_block_counts(block, start, target_scores, columns)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_kernel_reads_a_column_slice_of_a_wider_product():
    block, target_scores, columns = tie_heavy_block(3, 0)
    wide = torch.cat([block, torch.full((block.shape[0], 4), 9.0)], dim=1)
    got = _cpu_block_counts(wide[:, :block.shape[1]], 0, target_scores, columns)
    want = _torch_block_counts(block, 0, target_scores, columns)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -float("inf")])
def test_kernel_refuses_non_finite_scores_but_not_in_the_padding_column(fill):
    block, target_scores, columns = tie_heavy_block(5, 0)
    padded = block.clone()
    padded[:, 0] = fill  # column 0 is the padding item: never ranked, never checked
    _cpu_block_counts(padded, 0, target_scores, columns)
    block[2, 7] = fill
    with pytest.raises(NonFiniteScores):
        _cpu_block_counts(block, 0, target_scores, columns)
