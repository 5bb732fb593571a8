import numpy as np

from rclrec.data.batches import (
    batch_order,
    cost_balanced_chunks,
    left_pad,
    prefix_arrays,
    prefix_instances,
    real_length,
    trim_padding,
    window_instances,
)
from rclrec.data.dataset import SequenceDataset
from rclrec.data.split import contrast_units, leave_one_out


def test_left_pad_keeps_most_recent():
    out = left_pad([np.array([1, 2, 3, 4]), np.array([5])], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 5]]


def test_leave_one_out():
    ds = SequenceDataset([np.array([1, 2, 3, 4, 5]), np.array([3, 2, 1])], 5)
    split = leave_one_out(ds)
    assert split.train[0].tolist() == [1, 2, 3]
    assert split.valid_targets.tolist() == [4, 2]
    assert split.test_targets.tolist() == [5, 1]
    assert split.test_inputs()[1].tolist() == [3, 2]
    inputs, targets = contrast_units(split.train)
    assert inputs[0].tolist() == [1, 2] and targets.tolist() == [3, 3]


def test_windows_cover_every_target_once():
    rng = np.random.default_rng(0)
    train = [rng.integers(1, 50, size=n) for n in (1, 2, 5, 11, 12, 13, 30)]
    max_len = 5
    inst = window_instances(train, max_len)
    for u, seq in enumerate(train):
        rows = np.flatnonzero(inst.users == u)
        got = []
        for r in rows:
            inp, tgt = inst.inputs[r], inst.targets[r]
            keep = tgt != 0
            # every target follows its input item in the original sequence
            assert np.all(inp[keep] != 0)
            got += list(tgt[keep])
        assert sorted(got) == sorted(seq[1:].tolist())
        if len(seq) >= 2:
            assert inst.whole[rows].sum() == 1
            first = rows[inst.whole[rows]][0]
            assert inst.targets[first][-1] == seq[-1]


def test_prefixes():
    inst = prefix_instances([np.array([1, 2, 3]), np.array([4, 5])], 2)
    assert inst.inputs.tolist() == [[0, 1], [1, 2], [0, 4]]
    assert inst.targets[:, 0].tolist() == [2, 3, 5]
    assert inst.whole.tolist() == [False, True, True]


def test_batch_order_is_a_partition_and_groups_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 50, size=1000)
    batches = batch_order(lengths, 32, np.random.default_rng(2))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches if len(b) > 1])
    assert spread < np.ptp(lengths) / 2  # similar lengths share a batch


def test_trim_padding():
    x = np.array([[0, 0, 1, 2], [0, 0, 0, 3]])
    y = np.array([[0, 0, 2, 9], [0, 0, 0, 4]])
    tx, ty = trim_padding(x, y)
    assert tx.tolist() == [[1, 2], [0, 3]] and ty.tolist() == [[2, 9], [0, 4]]
    assert real_length(x).tolist() == [2, 1]


def test_prefix_arrays_match_the_training_instances():
    rng = np.random.default_rng(3)
    train = [rng.integers(1, 30, size=n) for n in rng.integers(1, 30, size=40)]
    windows, prefixes = window_instances(train, 8), prefix_instances(train, 8)
    users = np.flatnonzero([len(s) >= 2 for s in train])
    ends = np.array([len(train[u]) - 1 for u in users])
    inputs, targets = prefix_arrays(train, users, ends, 8, every_position=True)
    np.testing.assert_array_equal(inputs, windows.inputs[windows.whole])
    np.testing.assert_array_equal(targets, windows.targets[windows.whole])
    # Every prefix, in the order of prefix_instances.
    all_users = prefixes.users
    all_ends = np.concatenate([np.arange(1, len(s)) for s in train])
    inputs, targets = prefix_arrays(train, all_users, all_ends, 8, every_position=False)
    np.testing.assert_array_equal(inputs, prefixes.inputs)
    np.testing.assert_array_equal(targets, prefixes.targets)


def _chunk_cost(lengths, chunks, call_cost):
    return sum(len(c) * lengths[c].max() + call_cost for c in chunks)


def test_cost_balanced_chunks_cover_every_row_in_length_order_at_the_least_cost():
    rng = np.random.default_rng(0)
    for _ in range(30):
        lengths = rng.integers(1, 9, size=int(rng.integers(1, 9)))
        call_cost = float(rng.choice([0.0, 3.0, 10.0]))
        chunks = cost_balanced_chunks(lengths, call_cost)
        rows = np.concatenate(chunks)
        assert sorted(rows.tolist()) == list(range(len(lengths)))
        assert (np.diff(lengths[rows]) >= 0).all()  # length-sorted, chunks in order
        # Exhaustive: every way to cut the sorted rows into consecutive chunks.
        ordered = np.argsort(lengths, kind="stable")
        best = min(_chunk_cost(lengths, np.split(ordered, list(cuts)), call_cost)
                   for mask in range(2 ** (len(lengths) - 1))
                   for cuts in [[i + 1 for i in range(len(lengths) - 1) if mask >> i & 1]])
        assert _chunk_cost(lengths, chunks, call_cost) == best


def test_cost_balanced_chunks_extremes():
    lengths = np.array([5, 1, 1, 3, 5, 2])
    # Free calls: one chunk per distinct length, no padding at all.
    assert [c.tolist() for c in cost_balanced_chunks(lengths, 0)] == [[1, 2], [5], [3], [0, 4]]
    # Costly calls: everything in one chunk.
    assert [c.tolist() for c in cost_balanced_chunks(lengths, 1e9)] == [[1, 2, 5, 3, 0, 4]]
    assert cost_balanced_chunks(np.zeros(0, dtype=np.int64), 10) == []
