"""Ranking a catalogue in blocks of items gives the whole score matrix's ranks, ties included."""

import numpy as np
import pytest
import torch

from rclrec.eval import ranking
from rclrec.eval.ranking import (
    NonFiniteScores,
    evaluate_ranking,
    rank_targets,
    target_ranks,
)

NUM_ITEMS = 60


def tied_table(seed: int = 0) -> torch.Tensor:
    """An item table where many items score exactly alike: repeated rows and zeroed rows."""
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(NUM_ITEMS + 1, 8, generator=gen)
    table[10:30] = table[5]  # twenty copies of item 5, across several blocks
    table[40:45] = 0.0
    return table


def cases(b: int = 33, seed: int = 1):
    rng = np.random.default_rng(seed)
    histories = [rng.integers(1, NUM_ITEMS + 1, size=rng.integers(1, 9)) for _ in range(b)]
    targets = rng.integers(1, NUM_ITEMS + 1, size=b)
    targets[:6] = [5, 12, 29, 41, 1, NUM_ITEMS]  # tied targets, first and last items
    histories[0] = np.array([5, 11, 12])  # the target is in its own history
    width = max(len(h) for h in histories)
    history = torch.zeros(b, width, dtype=torch.long)
    for i, h in enumerate(histories):
        history[i, width - len(h):] = torch.from_numpy(h)
    return histories, history, torch.from_numpy(targets)


@pytest.mark.parametrize("exclude_history", [True, False])
@pytest.mark.parametrize("item_block", [1, 2, 7, 16, 61, 500])
def test_blocks_give_the_whole_matrix_ranks(item_block, exclude_history):
    table = tied_table()
    _, history, targets = cases()
    states = table[targets] + 0.0  # a target scores exactly like its copies
    states[1::2] = torch.randn(len(states[1::2]), 8, generator=torch.Generator().manual_seed(3))
    whole = target_ranks(states @ table.T, history, targets, exclude_history)
    blocked = rank_targets(states, table, history, targets, exclude_history, item_block)
    assert torch.equal(blocked[0], whole[0]) and torch.equal(blocked[1], whole[1])
    assert whole[1].max() >= 19  # the copies of item 5 are counted as ties


def test_a_zero_model_gets_chance_level_in_blocks_too():
    table = torch.zeros(NUM_ITEMS + 1, 4)
    _, history, targets = cases()
    states = torch.ones(len(targets), 4)
    higher, tied = rank_targets(states, table, history, targets, False, item_block=7)
    assert higher.eq(0).all() and tied.eq(NUM_ITEMS - 1).all()


class LookupEncoder(torch.nn.Module):
    """The state after a history is its last item's row: ties are easy to make."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.item_table = table

    def last_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.item_table[x[:, -1]]


def test_evaluate_ranking_in_small_blocks_matches_one_block(monkeypatch):
    encoder = LookupEncoder(tied_table())
    histories, _, targets = cases(b=70)
    args = (encoder, histories, targets.numpy(), 5)
    one, one_ranks = evaluate_ranking(*args, batch_size=16, return_ranks=True)
    monkeypatch.setattr(ranking, "CPU_SCORE_ELEMENTS", 16 * 20)  # 4 items beside 16 targets
    blocked, blocked_ranks = evaluate_ranking(*args, batch_size=16, return_ranks=True)
    assert blocked == one
    np.testing.assert_array_equal(blocked_ranks, one_ranks)


def test_a_non_finite_score_in_a_later_block_is_an_error():
    table = tied_table()
    table[NUM_ITEMS] = float("nan")
    _, history, targets = cases()
    states = torch.randn(len(targets), 8, generator=torch.Generator().manual_seed(4))
    with pytest.raises(NonFiniteScores):
        rank_targets(states, table, history, targets, True, item_block=7)


def test_a_large_batch_is_ranked_in_row_blocks_too(monkeypatch):
    table = tied_table()
    _, history, targets = cases(b=45)
    states = table[targets] + 0.0
    whole = target_ranks(states @ table.T, history, targets, True)
    monkeypatch.setattr(ranking, "CPU_SCORE_ELEMENTS", 200)  # 10 users: 10-item blocks
    monkeypatch.setattr(ranking, "CPU_BLOCK_ROWS", 10)
    blocked = rank_targets(states, table, history, targets, True)
    assert torch.equal(blocked[0], whole[0]) and torch.equal(blocked[1], whole[1])


def test_the_cpu_and_the_gpu_have_their_own_block_limits():
    assert ranking.score_limits(torch.device("cpu")) == (ranking.CPU_SCORE_ELEMENTS,
                                                         ranking.CPU_BLOCK_ROWS)
    assert ranking.score_limits(torch.device("cuda")) == (ranking.SCORE_ELEMENTS,
                                                          ranking.BLOCK_ROWS)


def test_whole_catalogue_row_blocks_are_near_equal(monkeypatch):
    """A batch one row over a multiple of the block is cut evenly, not with a one-row tail
    (a product of one or two rows may round differently from a larger one)."""
    table = tied_table()
    _, history, targets = cases(b=41)
    states = table[targets] + 0.0
    whole = target_ranks(states @ table.T, history, targets, True)
    monkeypatch.setattr(ranking, "CPU_SCORE_ELEMENTS", 10 * table.shape[0])  # 10 whole rows
    monkeypatch.setattr(ranking, "CPU_BLOCK_ROWS", 2)
    sizes = []
    counts = ranking.block_counts

    def spy(block, *args):
        sizes.append(block.shape[0])
        return counts(block, *args)

    monkeypatch.setattr(ranking, "block_counts", spy)
    blocked = rank_targets(states, table, history, targets, True)
    assert sorted(sizes) == [8, 8, 8, 8, 9]  # 41 rows in 5 blocks, none of 1
    assert torch.equal(blocked[0], whole[0]) and torch.equal(blocked[1], whole[1])


def test_products_written_into_a_reused_buffer_are_the_same_scores():
    gen = torch.Generator().manual_seed(5)
    table, states = torch.randn(NUM_ITEMS + 1, 8, generator=gen), torch.randn(9, 8, generator=gen)
    scratch = torch.full((2000,), float("nan"))
    assert torch.equal(ranking._scores(states, table, scratch), states @ table.T)
    assert ranking._scores(states, table, scratch).data_ptr() == scratch.data_ptr()
    assert ranking._scores(states, table, scratch[:10]).data_ptr() != scratch.data_ptr()


def test_a_reused_buffer_gives_the_same_ranks_and_leaves_autograd_alone(monkeypatch):
    table = tied_table()
    _, history, targets = cases(b=45)
    states = table[targets] + 0.0
    monkeypatch.setattr(ranking, "CPU_SCORE_ELEMENTS", 10 * table.shape[0])  # 10 whole rows
    whole = target_ranks(states @ table.T, history, targets, True)
    scratch = ranking.score_scratch(table)
    for _ in range(2):  # the second call reads a buffer the first one wrote
        got = rank_targets(states, table, history, targets, True, scratch=scratch)
        assert torch.equal(got[0], whole[0]) and torch.equal(got[1], whole[1])
    learned = table.clone().requires_grad_()
    got = rank_targets(states, learned, history, targets, True, scratch=scratch)
    assert torch.equal(got[0], whole[0]) and torch.equal(got[1], whole[1])
