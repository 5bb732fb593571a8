"""The vectorised left padding gives exactly the matrices of a plain loop."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.data.batches import FlatHistories


def left_pad(seqs, width):
    """The reference: the last ``width`` items of each sequence, padded on the left with 0."""
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-width:]
        if len(s):
            out[i, width - len(s):] = s
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(1, 50), max_size=12), min_size=1, max_size=20),
       st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_left_pad_of_any_rows_equals_the_loop(seqs, width, seed):
    seqs = [np.array(s, dtype=np.int32) for s in seqs]  # int32 in, int64 out, like left_pad
    flat = FlatHistories(seqs)
    np.testing.assert_array_equal(flat.left_pad(width=width), left_pad(seqs, width))
    rows = np.random.default_rng(seed).permutation(len(seqs))[:max(1, len(seqs) // 2)]
    chunk = [seqs[r] for r in rows]
    longest = max(1, max(len(s) for s in chunk))
    got = flat.left_pad(rows)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, left_pad(chunk, longest))
    np.testing.assert_array_equal(flat.left_pad(rows, width), left_pad(chunk, width))


def test_empty_sequences_give_a_padding_column():
    flat = FlatHistories([np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)])
    np.testing.assert_array_equal(flat.left_pad(), np.zeros((2, 1), dtype=np.int64))
    assert FlatHistories([]).left_pad(width=3).shape == (0, 3)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 12), max_size=60), st.integers(1, 7))
def test_equal_width_chunks_join_iter_last_states_chunks_of_one_width(lengths, size):
    from rclrec.data.batches import length_sorted_chunks
    from rclrec.eval.ranking import equal_width_chunks

    lengths = np.array(lengths, dtype=np.int64)
    joined = equal_width_chunks(lengths, size)
    plain = length_sorted_chunks(lengths, size)
    assert np.array_equal(np.concatenate(joined or [np.zeros(0, np.int64)]),
                          np.concatenate(plain or [np.zeros(0, np.int64)]))
    width = {int(r): max(int(lengths[c].max()), 1) for c in plain for r in c}
    longest = max(width.values(), default=1)
    for rows in joined:
        # one width, each row's own, and never more positions than a chunk of the longest
        assert max(int(lengths[rows].max()), 1) == width[int(rows[0])]
        assert {width[int(r)] for r in rows} == {width[int(rows[0])]}
        assert len(rows) * width[int(rows[0])] <= size * longest
    # Joined as far as allowed: a group is followed by another width, or by a chunk that
    # would take it over the limit.
    chunk_of = {int(r): i for i, c in enumerate(plain) for r in c}
    for a, b in zip(joined[:-1], joined[1:], strict=True):
        w = width[int(a[0])]
        assert width[int(b[0])] != w or (len(a) + len(plain[chunk_of[int(b[0])]])) * w > (
            size * longest)
