"""The one chunked last-state loop (rclrec/models/encode.py) against a per-sequence loop."""

import numpy as np
import pytest
import torch

from rclrec.config import EncoderConfig
from rclrec.data.batches import left_pad
from rclrec.models import build_encoder
from rclrec.models.encode import encode_histories, iter_last_states, last_states

MAX_LEN = 12


def make(name: str):
    torch.manual_seed(0)
    cfg = EncoderConfig(name=name, max_len=MAX_LEN, hidden_dim=16, num_heads=2, inner_dim=32)
    return build_encoder(cfg, num_items=40)


def histories(count: int = 37) -> list[np.ndarray]:
    rng = np.random.default_rng(0)  # lengths 0 .. beyond max_len, mixed across chunks
    return [rng.integers(1, 41, size=int(n)) for n in rng.integers(0, 2 * MAX_LEN, count)]


@pytest.mark.parametrize("name", ["sasrec", "fmlp"])
def test_the_helper_equals_a_per_sequence_loop(name):
    encoder = make(name).eval()
    seqs = histories()
    with torch.no_grad():
        alone = torch.cat([encoder.last_state(torch.from_numpy(left_pad([s], MAX_LEN)))
                           for s in seqs])
    together = encode_histories(encoder, seqs, MAX_LEN, chunk=5)
    assert together.shape == (len(seqs), 16)
    if name == "fmlp":  # pads to max_len itself: the width of a chunk cannot matter
        assert torch.equal(together, alone)
    else:  # SASRec masks padding; a narrower window may change the last float bits only
        torch.testing.assert_close(together, alone, rtol=0, atol=2e-6)


def test_the_order_of_the_rows_does_not_change_a_single_bit():
    encoder = make("sasrec").eval()
    seqs = histories()
    perm = np.random.default_rng(1).permutation(len(seqs))
    states = encode_histories(encoder, seqs, MAX_LEN, chunk=5)
    shuffled = encode_histories(encoder, [seqs[i] for i in perm], MAX_LEN, chunk=5)
    assert torch.equal(shuffled, states[torch.from_numpy(perm)])


def test_chunks_are_length_sorted_and_trimmed_to_their_longest_row():
    seqs = histories()
    padded = torch.from_numpy(left_pad(seqs, MAX_LEN))
    widths = []

    class Recorder(torch.nn.Module):
        def last_state(self, x):
            widths.append(x.shape[1])
            return x.float()[:, -1:]

    rows = [r for r, _ in iter_last_states(Recorder(), padded, 5)]
    lengths = np.minimum([len(s) for s in seqs], MAX_LEN)
    assert sorted(np.concatenate(rows)) == list(range(len(seqs)))
    assert widths == [max(int(lengths[r].max()), 1) for r in rows]
    pairs = zip(rows[:-1], rows[1:], strict=True)
    assert all(lengths[a].max() <= lengths[b].min() for a, b in pairs)


def test_last_states_keeps_autograd_and_encode_histories_restores_the_mode():
    encoder = make("sasrec").train()
    padded = torch.from_numpy(left_pad(histories(), MAX_LEN))
    last_states(encoder, padded, chunk=4).sum().backward()
    assert encoder.item_embedding.weight.grad.abs().sum() > 0
    encode_histories(encoder, histories(), MAX_LEN)
    assert encoder.training
    assert encode_histories(encoder, [], MAX_LEN).shape == (0, 16)


def test_a_chunk_plan_cuts_the_rows_and_host_rows_give_the_same_states():
    """``chunk`` may be a plan (lengths -> chunks, e.g. cost_balanced_chunks): the chunks are
    its chunks, each trimmed to its longest row; numpy rows give the tensor rows' states."""
    from rclrec.data.batches import cost_balanced_chunks

    encoder = make("sasrec").eval()
    padded = left_pad(histories(), MAX_LEN)
    lengths = (padded != 0).sum(1)
    plan = cost_balanced_chunks(lengths, call_cost=40)
    assert 1 < len(plan) < len(padded)
    got = [(rows, h) for rows, h in iter_last_states(encoder, padded,
                                                     lambda x: cost_balanced_chunks(x, 40))]
    assert [list(rows) for rows, _ in got] == [list(rows) for rows in plan]
    for rows, h in got:
        width = max(int(lengths[rows].max()), 1)
        window = torch.from_numpy(padded[rows, MAX_LEN - width:])
        assert torch.equal(h, encoder.last_state(window))
    from_tensor = last_states(encoder, torch.from_numpy(padded), 5)
    assert torch.equal(last_states(encoder, padded, 5), from_tensor)


def test_host_rows_are_encoded_where_the_encoder_is():
    """Numpy rows go to the encoder's device by default (here the meta device), not the CPU."""
    encoder = make("sasrec").eval().to("meta")
    padded = left_pad(histories(), MAX_LEN)
    assert last_states(encoder, padded, 5).device.type == "meta"
    assert encode_histories(encoder, histories(), MAX_LEN, chunk=5).device.type == "meta"
