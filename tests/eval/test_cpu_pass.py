"""The CPU validation pass's layout choices (issue 15, session 4) give every user the rank of a
straightforward reference: whole score rows, the history masked, targets counted one by one."""

import numpy as np
import pytest
import torch

from rclrec.config import EncoderConfig
from rclrec.data.batches import left_pad
from rclrec.eval import ranking
from rclrec.eval.ranking import evaluate_ranking, item_columns, rank_targets, rows_per_block
from rclrec.models import build_encoder
from rclrec.models.encode import MIN_PIECE_ROWS, iter_last_states, row_pieces

MAX_LEN, ITEMS = 10, 300


def reference_ranks(encoder, seqs, targets, batch_size):
    """Expected 0-based ranks the plain way: the states of iter_last_states' chunks, every
    item's score against the target's, the user's history (but the target) left out."""
    padded = left_pad(seqs, MAX_LEN)
    out = np.empty(len(seqs))
    with torch.no_grad():
        for rows, h in iter_last_states(encoder, padded, batch_size):
            scores = (h @ encoder.item_table.T).numpy()
            for i, r in enumerate(rows):
                target = scores[i, targets[r]]
                rankable = np.ones(ITEMS + 1, dtype=bool)
                rankable[0] = False
                rankable[seqs[r]] = False
                rankable[targets[r]] = True
                higher = int((scores[i, rankable] > target).sum())
                tied = int((scores[i, rankable] == target).sum()) - 1
                out[r] = higher + tied / 2.0
    return out


@pytest.mark.parametrize("name", ["sasrec", "fmlp"])
def test_pieces_and_cached_blocks_give_the_reference_ranks(name, monkeypatch):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(name=name, max_len=MAX_LEN, hidden_dim=16,
                                          num_heads=2, inner_dim=32), ITEMS).eval()
    with torch.no_grad():  # exact ties: twenty items share one embedding
        encoder.item_table[100:120] = encoder.item_table[7]
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(1, 4, 400), rng.integers(4, 25, 60)])
    seqs = [rng.integers(1, ITEMS + 1, size=int(n)) for n in rng.permutation(lengths)]
    targets = rng.integers(1, ITEMS + 1, size=len(seqs))
    targets[:20] = 7  # targets tied with their copies
    want = reference_ranks(encoder, seqs, targets, batch_size=64)
    # Small enough that chunks come in several pieces and pieces in several row blocks.
    monkeypatch.setattr(ranking, "CPU_ENCODER_POSITIONS", 100)
    monkeypatch.setattr(ranking, "CPU_CACHED_SCORES", 20 * (ITEMS + 1))
    monkeypatch.setattr(ranking, "CPU_BLOCK_ROWS", 8)
    _, got = evaluate_ranking(encoder, seqs, targets, MAX_LEN, batch_size=64, return_ranks=True)
    np.testing.assert_array_equal(got, want)
    assert want[:20].min() >= 9  # the copies count as ties (half a place each)


def test_products_read_from_the_transposed_table_are_the_same_scores():
    gen = torch.Generator().manual_seed(2)
    table = torch.randn(ITEMS + 1, 64, generator=gen)
    columns = item_columns(table)
    assert columns.is_contiguous() and columns.shape == (64, ITEMS + 1)
    scratch = ranking.score_scratch(table)
    for rows in (3, 16, 43, 86, 173):
        states = torch.randn(rows, 64, generator=gen)
        assert torch.equal(ranking._scores(states, table, scratch, columns), states @ table.T)


def test_cpu_row_blocks_stay_near_the_cache_size_but_never_change_the_path(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    limit, block_rows = ranking.score_limits(cpu)
    n = 12102  # Beauty: whole rows, fewer per block than the limit allows
    assert rows_per_block(n, cpu) == ranking.CPU_CACHED_SCORES // n < limit // n
    assert rows_per_block(n, gpu) == ranking.SCORE_ELEMENTS // n
    n = limit // block_rows - 1  # whole rows of block_rows users still fit: at least those
    assert rows_per_block(n, cpu) == block_rows == limit // n
    n = limit // block_rows + 1  # item blocks, as before
    assert rows_per_block(n, cpu) == block_rows > limit // n


def test_pieces_keep_the_chunk_width_and_enough_rows():
    rows = np.arange(100)
    window = torch.arange(100 * 7).reshape(100, 7)
    pieces = row_pieces(rows, window, positions=70)
    assert len(pieces) == 100 // MIN_PIECE_ROWS  # 10 rows a piece would be too few
    assert all(p.shape[1] == 7 and len(r) == len(p) >= MIN_PIECE_ROWS for r, p in pieces)
    assert np.array_equal(np.concatenate([r for r, _ in pieces]), rows)
    assert torch.equal(torch.cat([p for _, p in pieces]), window)
    assert row_pieces(rows, window, None)[0][1] is window
    assert len(row_pieces(rows, window, 700)) == 1


def test_pieces_give_the_whole_chunk_states_bit_for_bit():
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(name="sasrec", max_len=MAX_LEN, hidden_dim=16,
                                          num_heads=2, inner_dim=32), ITEMS).eval()
    rng = np.random.default_rng(1)
    padded = left_pad([rng.integers(1, ITEMS + 1, size=int(n))
                       for n in rng.integers(1, 2 * MAX_LEN, 300)], MAX_LEN)

    def states(positions):
        out = torch.full((len(padded), 16), float("nan"))
        calls = 0
        with torch.no_grad():
            for rows, h in iter_last_states(encoder, padded, 150, positions=positions):
                out[torch.from_numpy(rows)] = h
                calls += 1
        return out, calls

    (whole, chunks), (pieces, calls) = states(None), states(200)
    assert chunks == 2 and calls > 2
    assert torch.equal(pieces, whole)


def test_rank_targets_alone_cuts_cached_blocks_with_the_whole_matrix_ranks(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(ITEMS + 1, 8, generator=gen)
    states = torch.randn(50, 8, generator=gen)
    history = torch.randint(0, ITEMS + 1, (50, 5), generator=gen)
    targets = torch.randint(1, ITEMS + 1, (50,), generator=gen)
    monkeypatch.setattr(ranking, "CPU_CACHED_SCORES", 10 * (ITEMS + 1))
    monkeypatch.setattr(ranking, "CPU_BLOCK_ROWS", 4)
    whole = ranking.target_ranks(states @ table.T, history, targets)
    got = rank_targets(states, table, history, targets)
    assert torch.equal(got[0], whole[0]) and torch.equal(got[1], whole[1])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pieces_on_threads_give_the_one_thread_ranks(threads, monkeypatch):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(name="sasrec", max_len=MAX_LEN, hidden_dim=16,
                                          num_heads=2, inner_dim=32), ITEMS).eval()
    rng = np.random.default_rng(3)
    seqs = [rng.integers(1, ITEMS + 1, size=int(n)) for n in rng.integers(1, 25, 500)]
    targets = rng.integers(1, ITEMS + 1, size=len(seqs))
    monkeypatch.setattr(ranking, "CPU_ENCODER_POSITIONS", 300)
    before = torch.get_num_threads()
    handed = []
    threaded = ranking.on_threads

    def spy(pieces, work, count):
        handed.append(count)
        done = []
        threaded(pieces, lambda rows, piece: done.append(work(rows, piece)), count)
        assert len(done) > count  # more pieces than threads, every one done
        return None

    monkeypatch.setattr(ranking, "on_threads", spy)
    try:
        torch.set_num_threads(1)
        _, want = evaluate_ranking(encoder, seqs, targets, MAX_LEN, batch_size=64,
                                   return_ranks=True)
        assert not handed  # one thread: the plain loop
        torch.set_num_threads(threads)
        _, got = evaluate_ranking(encoder, seqs, targets, MAX_LEN, batch_size=64,
                                  return_ranks=True)
        assert torch.get_num_threads() == threads  # restored
    finally:
        torch.set_num_threads(before)
    assert handed == ([threads] if threads > 1 else [])
    np.testing.assert_array_equal(got, want)


def test_an_error_of_the_ranking_thread_reaches_the_caller():
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(name="sasrec", max_len=MAX_LEN, hidden_dim=16,
                                          num_heads=2, inner_dim=32), ITEMS).eval()
    with torch.no_grad():
        encoder.item_table[5] = float("nan")
    seqs = [np.array([1, 2, 3])] * 40
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ranking.NonFiniteScores):
            evaluate_ranking(encoder, seqs, np.full(40, 4), MAX_LEN, batch_size=8)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
