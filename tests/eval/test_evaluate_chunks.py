"""evaluate_ranking's joined encoder chunks give every user the rank that iter_last_states'
chunks give (the same rows at the same widths, only fewer calls)."""

import numpy as np
import pytest
import torch

from rclrec.config import EncoderConfig
from rclrec.data.batches import left_pad
from rclrec.eval.ranking import evaluate_ranking, rank_targets
from rclrec.models import build_encoder
from rclrec.models.encode import iter_last_states

MAX_LEN, ITEMS = 10, 30


def ranks_chunk_by_chunk(encoder, seqs, targets, batch_size):
    """The loop evaluate_ranking had: one encoder call per iter_last_states chunk."""
    out = np.empty(len(seqs))
    padded = torch.from_numpy(left_pad(seqs, MAX_LEN))
    with torch.no_grad():
        for rows, h in iter_last_states(encoder, padded, batch_size):
            chunk = [seqs[r] for r in rows]
            history = torch.from_numpy(left_pad(chunk, max(1, max(len(s) for s in chunk))))
            higher, tied = rank_targets(h, encoder.item_table, history,
                                        torch.from_numpy(targets[rows]))
            out[rows] = higher.numpy() + tied.numpy() / 2.0
    return out


@pytest.mark.parametrize("name", ["sasrec", "fmlp"])
def test_joined_chunks_give_the_ranks_of_iter_last_states_chunks(name):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(name=name, max_len=MAX_LEN, hidden_dim=16,
                                          num_heads=2, inner_dim=32), ITEMS).eval()
    rng = np.random.default_rng(0)
    # Mostly short sequences (many chunks of one width, joined), a few beyond the window.
    lengths = np.concatenate([rng.integers(1, 4, 150), rng.integers(4, 25, 20)])
    seqs = [rng.integers(1, ITEMS + 1, size=int(n)) for n in rng.permutation(lengths)]
    targets = rng.integers(1, ITEMS + 1, size=len(seqs))
    want = ranks_chunk_by_chunk(encoder, seqs, targets, batch_size=8)
    _, got = evaluate_ranking(encoder, seqs, targets, MAX_LEN, batch_size=8, return_ranks=True)
    np.testing.assert_array_equal(got, want)
