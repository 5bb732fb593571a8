"""The full-softmax cross-entropy against PyTorch's own, in value and gradients."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rclrec.losses import recommendation
from rclrec.losses.recommendation import (
    bce_one_negative_loss,
    cross_entropy_loss,
    recommendation_loss,
    select_target_positions,
)


def reference(states, targets, table):
    return F.cross_entropy(states @ table[1:].T, targets - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_and_gradients_match_torch_cross_entropy(dtype):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(41, 8, generator=gen, dtype=dtype, requires_grad=True)
    states = torch.randn(30, 8, generator=gen, dtype=dtype, requires_grad=True)
    targets = torch.tensor([1, 40, 7, 7, 7] + list(range(1, 26)))  # repeats and both ends
    ours = cross_entropy_loss(states, targets, table)
    ref = reference(states, targets, table)
    torch.testing.assert_close(ours, ref)
    g_ours = torch.autograd.grad(3.0 * ours, (states, table))
    g_ref = torch.autograd.grad(3.0 * ref, (states, table))
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    assert float(g_ours[1][0].abs().sum()) == 0  # padding is never a class


def test_a_second_backward_pass_gives_the_same_gradients():
    table = torch.randn(11, 4, requires_grad=True)
    states = torch.randn(5, 4, requires_grad=True)
    loss = cross_entropy_loss(states, torch.arange(1, 6), table)
    first = torch.autograd.grad(loss, (states, table), retain_graph=True)
    second = torch.autograd.grad(loss, (states, table))
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)


@pytest.fixture(params=["cpu branch", "no branch"])
def loss_path(request, monkeypatch):
    """Both ways of taking the loss from the softmax: on the CPU, underflowed rows recomputed
    after a branch; elsewhere (forced here), every row from its best item, with no branch."""
    if request.param == "no branch":
        monkeypatch.setattr(recommendation, "_branches_are_free", lambda device: False)
    return request.param


@pytest.fixture
def threads(request):
    """torch's intra-op thread count for one test (the process-wide setting is put back)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2, 3], indirect=True)
@pytest.mark.parametrize("blocks_per_thread", [True, False])
@pytest.mark.parametrize("block_elements", [40, 80, 120, 1 << 20])  # 1, 2, 3 rows, all 31
def test_row_blocks_give_the_same_value_and_gradients(monkeypatch, loss_path, threads,
                                                      blocks_per_thread, block_elements):
    # 31 rows: with several threads their shares of the rows and last blocks are uneven.
    gen = torch.Generator().manual_seed(2)
    table = torch.randn(41, 8, generator=gen, requires_grad=True)
    states = torch.randn(31, 8, generator=gen, requires_grad=True)
    targets = torch.randint(1, 41, (31,), generator=gen)
    monkeypatch.setattr(recommendation, "CHUNK_ELEMENTS", block_elements)
    monkeypatch.setattr(recommendation, "BLOCKS_PER_THREAD", blocks_per_thread)
    ours = cross_entropy_loss(states, targets, table)
    ref = reference(states, targets, table)
    torch.testing.assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours, (states, table)),
                    torch.autograd.grad(ref, (states, table)), strict=True):
        torch.testing.assert_close(a, b)
    assert torch.get_num_threads() == threads  # the caller's setting is left as it was


@pytest.mark.parametrize("block_elements", [40, 1 << 20])
def test_a_target_whose_probability_underflows_keeps_an_exact_loss(monkeypatch, loss_path,
                                                                   block_elements):
    # Rows 0 and 3 score their target ~120 below their best item: softmax gives it 0 in float32
    # (its log would be -inf), yet the loss must be the finite logsumexp - target score.
    gen = torch.Generator().manual_seed(5)
    table = torch.randn(41, 8, generator=gen)
    table[7] = 0
    table[1:7] = torch.randn(6, 8, generator=gen)
    table[3, 0] = 20.0
    table = table.requires_grad_()
    states = torch.randn(6, 8, generator=gen)
    states[[0, 3], 0] = 6.0
    states = states.requires_grad_()
    targets = torch.tensor([7, 2, 5, 7, 40, 1])
    monkeypatch.setattr(recommendation, "CHUNK_ELEMENTS", block_elements)
    with torch.no_grad():
        assert torch.softmax(states @ table[1:].T, 1)[[0, 3], 6].max() == 0
    ours = cross_entropy_loss(states, targets, table)
    ref = reference(states, targets, table)
    assert torch.isfinite(ours) and float(ref.detach()) > 20
    torch.testing.assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours, (states, table)),
                    torch.autograd.grad(ref, (states, table)), strict=True):
        torch.testing.assert_close(a, b)


def test_without_gradients_only_the_value_is_computed():
    gen = torch.Generator().manual_seed(3)
    table, states = torch.randn(41, 8, generator=gen), torch.randn(30, 8, generator=gen)
    targets = torch.randint(1, 41, (30,), generator=gen)
    with torch.no_grad():
        loss = cross_entropy_loss(states, targets, table)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, reference(states, targets, table))


def test_bf16_states_get_a_float32_softmax_and_loss():
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(41, 8, generator=gen, requires_grad=True)
    states = torch.randn(30, 8, generator=gen).bfloat16().requires_grad_()
    targets = torch.randint(1, 41, (30,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = cross_entropy_loss(states, targets, table)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference(states.float(), targets, table))
    loss.backward()
    assert states.grad.dtype == torch.bfloat16 and torch.isfinite(states.grad.float()).all()


def test_recommendation_loss_follows_train_loss_and_names_a_bad_one():
    gen = torch.Generator().manual_seed(1)
    table, states = torch.randn(11, 4, generator=gen), torch.randn(5, 4, generator=gen)
    targets = torch.tensor([1, 2, 3, 10, 10])
    torch.testing.assert_close(recommendation_loss("ce", states, targets, table),
                               reference(states, targets, table))
    torch.manual_seed(0)
    bce = recommendation_loss("bce", states, targets, table)
    torch.manual_seed(0)
    torch.testing.assert_close(bce, bce_one_negative_loss(states, targets, table))
    with pytest.raises(ValueError, match="train.loss"):
        recommendation_loss("bpr", states, targets, table)


def test_target_positions_found_on_the_host_equal_the_device_mask():
    hidden = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    windows = np.array([[0, 0, 7, 8], [0, 3, 4, 5], [0, 0, 0, 9]])
    for targets in (windows, windows[:, -1:]):
        on_host = select_target_positions(hidden, targets)
        on_device = select_target_positions(hidden, torch.from_numpy(targets))
        assert torch.equal(on_host[0], on_device[0]) and torch.equal(on_host[1], on_device[1])


@pytest.mark.parametrize("threads", [2], indirect=True)
def test_blocks_per_thread_sends_each_thread_its_own_rows(monkeypatch, threads):
    seen = []

    def record(tasks):
        seen.append(len(tasks))
        return [task() for task in tasks]

    monkeypatch.setattr(recommendation, "run_one_thread_each", record)
    monkeypatch.setattr(recommendation, "CHUNK_ELEMENTS", 80)  # 2 rows a block
    table, states = torch.randn(41, 8), torch.randn(30, 8)
    targets = torch.randint(1, 41, (30,))
    for blocks_per_thread, rows in [(True, 30), (False, 30), (True, 2), (True, 3)]:
        monkeypatch.setattr(recommendation, "BLOCKS_PER_THREAD", blocks_per_thread)
        cross_entropy_loss(states[:rows], targets[:rows], table)
    # Split: 30 rows over both threads, and 3 rows (a block and a half); not split: the
    # switch off, or a single block.
    assert seen == [2, 2]


def test_thread_parts_cover_every_row_once_and_none_gets_less_than_a_block(monkeypatch):
    monkeypatch.setattr(recommendation, "BLOCKS_PER_THREAD", True)
    before = torch.get_num_threads()
    for count, rows, threads in [(1500, 86, 2), (31, 2, 3), (3, 2, 2), (2, 2, 2), (5, 1, 8)]:
        torch.set_num_threads(threads)
        try:
            parts = recommendation._thread_parts(count, rows, 41 * 8, torch.device("cpu"))
        finally:
            torch.set_num_threads(before)
        assert [i for part in parts for i in part] == list(range(count))
        assert len(parts) == min(threads, -(-count // rows))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_huge_item_table_gets_fewer_threads_than_its_sums_would_need(monkeypatch):
    monkeypatch.setattr(recommendation, "BLOCKS_PER_THREAD", True)
    monkeypatch.setattr(recommendation, "EXTRA_SUM_ELEMENTS", 1000)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        parts = [len(recommendation._thread_parts(100, 1, elements, torch.device("cpu")))
                 for elements in (10, 400, 1000, 5000)]
    finally:
        torch.set_num_threads(before)
    assert parts == [4, 3, 2, 1]


@pytest.mark.parametrize("threads", [2], indirect=True)
def test_threads_under_inference_mode_give_the_value_of_torch(monkeypatch, threads):
    monkeypatch.setattr(recommendation, "BLOCKS_PER_THREAD", True)
    monkeypatch.setattr(recommendation, "CHUNK_ELEMENTS", 80)  # 2 rows a block
    gen = torch.Generator().manual_seed(7)
    table, states = torch.randn(41, 8, generator=gen), torch.randn(30, 8, generator=gen)
    targets = torch.randint(1, 41, (30,), generator=gen)
    with torch.inference_mode():
        loss = cross_entropy_loss(states, targets, table)
    torch.testing.assert_close(loss, reference(states, targets, table))
