"""The vectorised left padding gives exactly data.batches.left_pad's matrices."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.data.batches import left_pad
from rclrec.eval.histories import FlatHistories


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
