"""Readers: formats, remapping, sorting, k-core and the error messages on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rclrec.data.dataset import DataError
from rclrec.data.io import SHORT_USERS_KEY, read_pairs_file, read_sequence_file
from rclrec.data.logs import read_atomic_inter, read_raw_log


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def as_lists(ds) -> list[list[int]]:
    return [s.tolist() for s in ds.sequences]


# ---------------------------------------------------------------- sequence format


def test_sequence_file_keeps_contiguous_ids(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n2 3 2 1 4\n")
    ds = read_sequence_file(path)
    assert as_lists(ds) == [[1, 2, 3], [3, 2, 1, 4]]
    assert ds.num_items == 4
    assert ds.user_ids == ["1", "2"]
    assert ds.item_ids == ["1", "2", "3", "4"]
    assert ds.name == str(path)
    assert ds.skipped == {SHORT_USERS_KEY: 0}


def test_sequence_file_remaps_gapped_ids_in_id_order(tmp_path):
    ds = read_sequence_file(write(tmp_path, "seq.txt", "a 10 30 20\nb 30 7 10\n"))
    assert ds.item_ids == ["7", "10", "20", "30"]
    assert as_lists(ds) == [[2, 4, 3], [4, 1, 2]]
    assert ds.user_ids == ["a", "b"]


def test_sequence_file_skips_short_users_with_warning(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n2 4 5\n\n3 3 2 1\n")
    with pytest.warns(UserWarning, match="skipped 1 users"):
        ds = read_sequence_file(path)
    assert ds.user_ids == ["1", "3"]
    assert ds.skipped[SHORT_USERS_KEY] == 1
    # Items 4 and 5 only occurred for the skipped user, so ids stay contiguous 1..3.
    assert ds.num_items == 3


def test_sequence_file_user_without_items(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n2\n")
    with pytest.raises(DataError, match=rf"{path}:2: user 2 has no items"):
        read_sequence_file(path)


def test_sequence_file_non_numeric_item(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n2 4 x5 6\n")
    with pytest.raises(DataError, match=rf"{path}:2: item id 'x5' is not an integer"):
        read_sequence_file(path)


def test_sequence_file_non_positive_item(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 0 3\n")
    with pytest.raises(DataError, match=rf"{path}:1: item id 0 is not positive"):
        read_sequence_file(path)


def test_sequence_file_user_on_two_lines(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n1 4 5 6\n")
    with pytest.raises(DataError, match=rf"{path}:2: user 1 already has a line \(line 1\)"):
        read_sequence_file(path)


def test_sequence_file_empty(tmp_path):
    path = write(tmp_path, "seq.txt", "\n\n")
    with pytest.raises(DataError, match=rf"{path}: empty file"):
        read_sequence_file(path)


def test_missing_file_for_every_reader(tmp_path):
    path = tmp_path / "nope.txt"
    for reader in (read_sequence_file, read_pairs_file, read_raw_log, read_atomic_inter):
        with pytest.raises(DataError, match=rf"{path}: no such file"):
            reader(path)


# ---------------------------------------------------------------- pairs format


def test_pairs_file_groups_users_in_file_order(tmp_path):
    path = write(tmp_path, "pairs.txt", "2 3\n1 1\n2 1\n1 2\n2 2\n1 3\n1 4\n")
    ds = read_pairs_file(path)
    assert ds.user_ids == ["1", "2"]
    assert as_lists(ds) == [[1, 2, 3, 4], [3, 1, 2]]
    assert ds.num_items == 4


def test_pairs_file_numeric_user_order_and_remap(tmp_path):
    path = write(tmp_path, "pairs.txt", "10 5\n9 7\n10 7\n9 9\n10 9\n9 5\n")
    ds = read_pairs_file(path)
    assert ds.user_ids == ["9", "10"]  # numeric, not string, order
    assert ds.item_ids == ["5", "7", "9"]
    assert as_lists(ds) == [[2, 3, 1], [1, 2, 3]]


def test_pairs_file_wrong_field_count(tmp_path):
    path = write(tmp_path, "pairs.txt", "1 1\n1 2 5\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected 2 fields 'user item', found 3"):
        read_pairs_file(path)


def test_pairs_file_non_numeric_item(tmp_path):
    path = write(tmp_path, "pairs.txt", "1 1\n1 2\n1 abc\n")
    with pytest.raises(DataError, match=rf"{path}:3: item id 'abc' is not an integer"):
        read_pairs_file(path)


def test_pairs_file_empty(tmp_path):
    path = write(tmp_path, "pairs.txt", "")
    with pytest.raises(DataError, match=rf"{path}: empty file"):
        read_pairs_file(path)


def test_pairs_file_skips_short_users(tmp_path):
    path = write(tmp_path, "pairs.txt", "1 1\n1 2\n1 3\n2 1\n")
    with pytest.warns(UserWarning, match="fewer than 3"):
        ds = read_pairs_file(path)
    assert ds.skipped[SHORT_USERS_KEY] == 1
    assert ds.user_ids == ["1"]


# ---------------------------------------------------------------- raw logs


def test_raw_log_sorts_by_time_with_row_order_tie_breaker(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n"
                                      "u1,a,5\nu1,b,3\nu1,c,5\nu1,d,3\nu0,c,9\nu0,a,1\nu0,b,1\n")
    ds = read_raw_log(path, k_core=0)
    assert ds.user_ids == ["u0", "u1"]
    assert ds.item_ids == ["a", "b", "c", "d"]
    # u0: a and b tie at t=1 (row order a, b), then c; u1: b, d (t=3), a, c (t=5).
    assert as_lists(ds) == [[1, 2, 3], [2, 4, 1, 3]]


def test_raw_log_iterated_k_core_removes_more_in_later_rounds(tmp_path):
    # Round 1 drops user D (2 rows) and item q (1 row); then E has 2 rows and z has 2,
    # so round 2 drops them; then F has 2 rows and round 3 drops it.
    rows = ["A x", "A y", "A w", "B x", "B y", "B w", "C x", "C y", "C w",
            "D z", "D x", "E z", "E y", "E q", "F z", "F w", "F x"]
    text = "user\titem\ttimestamp\n" + "".join(
        f"{r.replace(' ', chr(9))}\t{t}\n" for t, r in enumerate(rows))
    path = write(tmp_path, "log.tsv", text)
    ds = read_raw_log(path, k_core=3)
    assert ds.user_ids == ["A", "B", "C"]
    assert ds.item_ids == ["w", "x", "y"]
    assert as_lists(ds) == [[2, 3, 1]] * 3
    assert ds.skipped["k_core_users"] == 3
    assert ds.skipped["k_core_items"] == 2
    assert ds.skipped["k_core_interactions"] == 8


def test_raw_log_drop_repeats(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n"
                                      "1,5,1\n1,5,2\n1,6,3\n1,5,4\n1,7,5\n1,7,6\n")
    kept = read_raw_log(path, k_core=0)
    assert as_lists(kept) == [[1, 1, 2, 1, 3, 3]]
    dropped = read_raw_log(path, k_core=0, drop_repeats=True)
    assert as_lists(dropped) == [[1, 2, 1, 3]]  # 5 6 5 7: only immediate repeats go
    assert dropped.skipped["immediate_repeats"] == 2


def test_raw_log_headerless_positional_columns(tmp_path):
    # u.data layout: user, item, rating, timestamp; the rating is ignored.
    path = write(tmp_path, "u.data", "2\t20\t5\t300\n2\t10\t1\t100\n1\t30\t3\t7\n"
                                     "2\t30\t4\t200\n1\t10\t2\t9\n1\t20\t2\t8\n")
    ds = read_raw_log(path, k_core=0)
    assert ds.user_ids == ["1", "2"]
    assert ds.item_ids == ["10", "20", "30"]
    assert as_lists(ds) == [[3, 2, 1], [1, 3, 2]]


def test_raw_log_headerless_three_columns_is_user_item_time(tmp_path):
    path = write(tmp_path, "log.txt", "1 a 3\n1 b 2\n1 c 1\n")
    ds = read_raw_log(path, k_core=0)
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["c", "b", "a"]


def test_raw_log_without_time_keeps_file_order(tmp_path):
    path = write(tmp_path, "log.csv", "item,user\nc,1\na,1\nb,1\n")
    ds = read_raw_log(path, time_col=None, k_core=0)
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["c", "a", "b"]


def test_raw_log_typed_header_and_iso_dates(tmp_path):
    path = write(tmp_path, "log.csv", "user:token,item:token,timestamp:float\n"
                                      "1,a,2024-01-03\n1,b,2024-01-01\n1,c,2024-01-02\n")
    ds = read_raw_log(path, k_core=0)
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["b", "c", "a"]


def test_raw_log_missing_column_names_columns_and_option(tmp_path):
    path = write(tmp_path, "log.csv", "uid,item,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as err:
        read_raw_log(path, user_col="user")
    message = str(err.value)
    assert f"{path}:1: no column 'user'" in message
    assert "columns found: uid, item, timestamp" in message
    assert "--set data.user_col=" in message


def test_raw_log_short_row(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n1,2\n")
    with pytest.raises(DataError, match=rf"{path}:3: expected at least 3 fields, found 2"):
        read_raw_log(path)


def test_raw_log_bad_timestamp(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n1,3,yesterday\n")
    with pytest.raises(DataError, match=rf"{path}:3: timestamp 'yesterday'"):
        read_raw_log(path)


def test_raw_log_empty(tmp_path):
    path = write(tmp_path, "log.csv", "")
    with pytest.raises(DataError, match=rf"{path}: empty file"):
        read_raw_log(path)


def test_raw_log_header_only(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n")
    with pytest.raises(DataError, match=rf"{path}: no data rows"):
        read_raw_log(path)


def test_raw_log_everything_filtered(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,2,3\n1,3,4\n")
    with pytest.raises(DataError, match=rf"{path}: no interactions left after 5-core"):
        read_raw_log(path)


def test_parquet_that_is_not_parquet(tmp_path):
    path = write(tmp_path, "log.parquet", "not really parquet")
    with pytest.raises(DataError, match=rf"{path}: not a Parquet file"):
        read_raw_log(path)


# ---------------------------------------------------------------- RecBole atomic files


def test_atomic_inter_sorts_by_timestamp_stably(tmp_path):
    path = write(tmp_path, "x.inter", "user_id:token\titem_id:token\trating:float\t"
                                      "timestamp:float\n"
                                      "u\ti3\t5\t2\nu\ti1\t5\t1\nu\ti2\t5\t2\nv\ti1\t1\t0\n"
                                      "v\ti2\t1\t0\nv\ti3\t1\t0\n")
    ds = read_atomic_inter(path)
    assert ds.user_ids == ["u", "v"]
    assert ds.item_ids == ["i1", "i2", "i3"]
    assert as_lists(ds) == [[1, 3, 2], [1, 2, 3]]


def test_atomic_inter_without_timestamp_keeps_file_order(tmp_path):
    path = write(tmp_path, "x.inter", "item_id:token\tuser_id:token\n3\t1\n1\t1\n2\t1\n")
    ds = read_atomic_inter(path)
    assert as_lists(ds) == [[3, 1, 2]]


def test_atomic_inter_missing_column(tmp_path):
    path = write(tmp_path, "x.inter", "user:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=rf"{path}:1: no column 'user_id'; columns found: "
                                        r"user, item_id"):
        read_atomic_inter(path)


def test_atomic_inter_empty(tmp_path):
    path = write(tmp_path, "x.inter", "")
    with pytest.raises(DataError, match=rf"{path}: empty file"):
        read_atomic_inter(path)


def test_sequences_are_int64(tmp_path):
    ds = read_raw_log(write(tmp_path, "log.csv", "user,item,timestamp\n1,a,1\n1,b,2\n1,c,3\n"),
                      k_core=0)
    assert all(s.dtype == np.int64 for s in ds.sequences)
