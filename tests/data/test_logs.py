"""Raw logs as people have them: usual column names, time formats, bad rows, the fast path."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rclrec.data import logs
from rclrec.data.dataset import DataError
from rclrec.data.io import read_pairs_file, read_sequence_file
from rclrec.data.logs import BAD_TIMES_KEY, read_raw_log


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def items_of(ds, user: int = 0) -> list[str]:
    return [ds.item_ids[i - 1] for i in ds.sequences[user]]


@pytest.mark.parametrize("header", ["user_id,item_id,timestamp", "userId,movieId,timestamp",
                                    "UID,ASIN,Time", "customer_id,product_id,datetime",
                                    "visitorid,itemid,ts", "user,track_id,event_time"])
def test_usual_column_names_need_no_settings(tmp_path, header):
    path = write(tmp_path, "log.csv", f"{header}\nu,c,3\nu,a,1\nu,b,2\n")
    ds = read_raw_log(path, k_core=0)
    assert items_of(ds) == ["a", "b", "c"]


def test_usual_names_among_other_columns(tmp_path):
    # MovieLens ratings.csv layout, columns in another order and an extra one.
    path = write(tmp_path, "ratings.csv", "rating,movieId,timestamp,userId\n"
                                          "5,10,300,1\n4,20,100,1\n3,30,200,1\n")
    ds = read_raw_log(path, k_core=0)
    assert ds.user_ids == ["1"]
    assert items_of(ds) == ["20", "30", "10"]


def test_ambiguous_header_lists_the_candidates(tmp_path):
    path = write(tmp_path, "log.csv", "user_id,uid,item,timestamp\n1,2,a,1\n")
    with pytest.raises(DataError, match=rf"{path}:1: columns 'user_id' and 'uid' could each be "
                                        r"the user column; choose one with "
                                        r"--set data.user_col=NAME"):
        read_raw_log(path)


def test_an_explicit_column_wins_over_recognition(tmp_path):
    path = write(tmp_path, "log.csv", "user_id,uid,item,date,timestamp\n"
                                      "x,u,a,2020-01-01,3\nx,u,b,2020-01-02,2\ny,u,c,2020-01-03,1\n")
    ds = read_raw_log(path, user_col="uid", time_col="timestamp", k_core=0)
    assert ds.user_ids == ["u"]
    assert items_of(ds) == ["c", "b", "a"]
    by_date = read_raw_log(path, user_col="uid", time_col="date", k_core=0)
    assert items_of(by_date) == ["a", "b", "c"]


def test_no_usual_name_says_which_names_were_tried(tmp_path):
    path = write(tmp_path, "log.csv", "who,item,timestamp\n1,a,1\n")
    with pytest.raises(DataError) as err:
        read_raw_log(path)
    message = str(err.value)
    assert f"{path}:1: no user column" in message
    assert "user_id" in message and "columns found: who, item, timestamp" in message
    assert "--set data.user_col=NAME" in message


def test_duplicated_header_column_is_refused_by_name(tmp_path):
    # Today the first 'item' column was read without a word.
    path = write(tmp_path, "log.csv", "user,item,item,timestamp\n1,a,b,1\n1,b,c,2\n1,c,a,3\n")
    with pytest.raises(DataError, match=rf"{path}:1: column 'item' appears more than once in "
                                        r"the header \(columns 2 and 3\)"):
        read_raw_log(path, k_core=0)


def test_duplicated_column_in_parquet_is_refused(tmp_path):
    path = tmp_path / "log.parquet"
    table = pa.table([pa.array(["1"]), pa.array(["a"]), pa.array(["b"]), pa.array([1])],
                     names=["user", "item", "item", "timestamp"])
    pq.write_table(table, path)
    with pytest.raises(DataError, match="column 'item' appears more than once"):
        read_raw_log(path, k_core=0)


@pytest.mark.parametrize("bad", ["nan", "", "inf", "-inf", "NaN", "soon"])
def test_bad_timestamp_is_refused_with_file_and_line(tmp_path, bad):
    # Today 'nan' sorted last and became the user's test target.
    path = write(tmp_path, "log.csv", f"user,item,timestamp\n1,a,1\n1,b,{bad}\n1,c,2\n")
    with pytest.raises(DataError, match=rf"{path}:3: timestamp '{bad}' is missing, not finite"):
        read_raw_log(path, k_core=0)


def test_bad_timestamps_dropped_with_a_count_when_asked(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,a,1\n1,b,nan\n1,c,\n1,d,2\n"
                                      "1,e,3\n")
    with pytest.warns(UserWarning, match="dropped 2 rows with a missing or unparsable"):
        ds = read_raw_log(path, k_core=0, bad_times="drop")
    assert items_of(ds) == ["a", "d", "e"]
    assert ds.skipped[BAD_TIMES_KEY] == 2


def test_bad_timestamp_in_parquet_names_the_row(tmp_path):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": ["1", "1", "1"], "item": ["a", "b", "c"],
                             "timestamp": [1.0, None, 3.0]}), path)
    with pytest.raises(DataError, match=rf"{path}: row 2: timestamp ''"):
        read_raw_log(path, k_core=0)


def test_iso_times_with_and_without_zones_and_dates(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,time\n"
                                      "1,a,2024-01-02T10:00:00+02:00\n"  # 08:00 UTC
                                      "1,b,2024-01-02T09:00:00\n"  # naive = UTC
                                      "1,c,2024-01-02\n"
                                      "1,d,2024-01-02 08:30:00Z\n")
    ds = read_raw_log(path, k_core=0)
    assert items_of(ds) == ["c", "a", "d", "b"]
    start = 1704153600.0  # 2024-01-02T00:00:00Z
    assert ds.times[0].tolist() == [start, start + 8 * 3600, start + 8.5 * 3600, start + 9 * 3600]


def test_headerless_log_with_iso_times_is_not_taken_for_a_header(tmp_path):
    path = write(tmp_path, "log.csv", "u1,i3,2024-03-01T00:00:00\nu1,i1,2024-01-01T00:00:00\n"
                                      "u1,i2,2024-02-01T00:00:00\n")
    ds = read_raw_log(path, k_core=0)
    assert ds.user_ids == ["u1"]
    assert items_of(ds) == ["i1", "i2", "i3"]


def test_ids_too_large_for_int64_are_tokens_in_raw_logs(tmp_path):
    # Today this ended in an OverflowError traceback.
    big = ["99999999999999999999", "100000000000000000000", "5"]
    path = write(tmp_path, "log.csv", "user,item,timestamp\n" + "".join(
        f"18446744073709551616,{item},{t}\n" for t, item in enumerate(big)))
    ds = read_raw_log(path, k_core=0)
    assert ds.user_ids == ["18446744073709551616"]
    assert items_of(ds) == big
    assert ds.item_ids == sorted(big)  # string order: they are not all 64-bit integers


def test_item_id_too_large_for_int64_in_a_sequence_file(tmp_path):
    path = write(tmp_path, "seq.txt", "1 1 2 3\n2 1 99999999999999999999 3\n")
    with pytest.raises(DataError, match=rf"{path}:2: item id 99999999999999999999 is too large"):
        read_sequence_file(path)


def test_item_id_too_large_for_int64_in_a_pairs_file(tmp_path):
    path = write(tmp_path, "pairs.txt", "1 1\n1 2\n1 9223372036854775808\n")
    with pytest.raises(DataError, match=rf"{path}:3: item id 9223372036854775808 is too large"):
        read_pairs_file(path)


# ---------------------------------------------------------------- the fast path


def random_log(seed: int, rows: int, users: int, items: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        user = f"u{rng.randrange(users)}"
        item = f"i{int(items * rng.random() ** 2)}"  # popular items first
        month, day, hour = rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 3)
        time = f"2024-{month:02d}-{day:02d}T{hour:02d}:00:00"
        out.append((user, item, time))
    return out


def reference_k_core(rows, k: int) -> dict[str, list[str]]:
    """Iterated k-core and chronological sequences by plain Python loops (no numpy)."""
    kept = list(enumerate(rows))
    while True:
        per_user, per_item = defaultdict(int), defaultdict(int)
        for _, (user, item, _) in kept:
            per_user[user] += 1
            per_item[item] += 1
        smaller = [(r, row) for r, row in kept if per_user[row[0]] >= k and per_item[row[1]] >= k]
        if len(smaller) == len(kept):
            break
        kept = smaller
    sequences: dict[str, list] = defaultdict(list)
    for r, (user, item, time) in kept:
        sequences[user].append((time, r, item))
    return {user: [item for _, _, item in sorted(s)] for user, s in sequences.items()}


def as_dict(ds) -> dict[str, list[str]]:
    return {user: items_of(ds, u) for u, user in enumerate(ds.user_ids)}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "parquet-row-groups"])
def test_iterated_5_core_equals_an_independent_reference(tmp_path, fmt):
    rows = random_log(seed=3, rows=6000, users=600, items=400)
    if fmt == "csv":
        path = write(tmp_path, "log.csv", "user_id,item_id,timestamp\n" +
                     "".join(",".join(r) + "\n" for r in rows))
    else:
        # Row groups of 700 rows: the reader encodes each group's ids and times on their own
        # (its own dictionary of ids) and must join them as one encoding.
        path = tmp_path / "log.parquet"
        pq.write_table(pa.table({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                                 "timestamp": [r[2] for r in rows]}), path,
                       row_group_size=700 if fmt == "parquet-row-groups" else None)
        assert pq.ParquetFile(path).num_row_groups == (9 if fmt == "parquet-row-groups" else 1)
    expected = reference_k_core(rows, 5)
    ds = read_raw_log(path, k_core=5)
    got = as_dict(ds)
    assert len(got) == len(expected) and set(got) == set(expected)
    assert got == expected
    assert ds.num_items == len({i for s in expected.values() for i in s})
    assert ds.num_interactions == sum(len(s) for s in expected.values())
    assert ds.skipped["k_core_interactions"] == len(rows) - ds.num_interactions
    assert 0 < ds.num_interactions < len(rows)  # the filter had work to do


def test_fast_and_row_by_row_readers_agree(tmp_path, monkeypatch):
    rows = random_log(seed=5, rows=3000, users=200, items=300)
    text = "user,item,rating,timestamp\n" + "".join(f"{u},{i},4,{t}\n" for u, i, t in rows)
    path = write(tmp_path, "log.csv", text)
    fast = read_raw_log(path, k_core=3, drop_repeats=True)

    def refuse(*args, **kwargs):
        raise logs._NeedsLineNumbers

    monkeypatch.setattr(logs, "_read_delimited_fast", refuse)
    slow = read_raw_log(path, k_core=3, drop_repeats=True)
    assert fast.user_ids == slow.user_ids and fast.item_ids == slow.item_ids
    assert as_dict(fast) == as_dict(slow)
    assert [t.tolist() for t in fast.times] == [t.tolist() for t in slow.times]
    assert fast.skipped == slow.skipped


def test_numeric_ids_order_numerically_in_every_reader(tmp_path):
    text = "user,item,timestamp\n10,200,1\n10,30,2\n10,4,3\n9,4,1\n9,30,2\n9,200,3\n"
    csv_ds = read_raw_log(write(tmp_path, "log.csv", text), k_core=0)
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [10, 10, 10, 9, 9, 9], "item": [200, 30, 4, 4, 30, 200],
                             "timestamp": [1, 2, 3, 1, 2, 3]}), path)
    parquet_ds = read_raw_log(path, k_core=0)
    for ds in (csv_ds, parquet_ds):
        assert ds.user_ids == ["9", "10"]
        assert ds.item_ids == ["4", "30", "200"]
        assert [s.tolist() for s in ds.sequences] == [[1, 2, 3], [3, 2, 1]]


@pytest.mark.parametrize("bad", ["time", "user"])
def test_bad_row_in_a_later_parquet_row_group_is_named_by_its_row_in_the_file(tmp_path, bad):
    users, items, times = ["u"] * 10, list("abcdefghij"), [str(t) for t in range(10)]
    if bad == "time":
        times[7] = "soon"
    else:
        users[7] = ""
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": users, "item": items, "timestamp": times}), path,
                   row_group_size=3)
    message = "timestamp 'soon'" if bad == "time" else "empty user id"
    with pytest.raises(DataError, match=rf"{path}: row 8: {message}"):
        read_raw_log(path, k_core=0)


def test_empty_parquet_row_groups_are_skipped(tmp_path):
    path = tmp_path / "log.parquet"
    schema = pa.schema([("user", pa.string()), ("item", pa.string()), ("time", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for rows in ([], [("u", "b", "2024-01-02")], [], [("u", "a", "2024-01-01")]):
            writer.write_table(pa.table({name: [row[i] for row in rows]
                                         for i, name in enumerate(schema.names)}, schema=schema))
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    assert items_of(read_raw_log(path, k_core=0, min_length=1)) == ["a", "b"]


def test_parquet_timestamp_column(tmp_path):
    path = tmp_path / "log.parquet"
    times = np.array(["2024-01-03", "2024-01-01", "2024-01-02"], dtype="datetime64[s]")
    pq.write_table(pa.table({"user_id": ["u", "u", "u"], "asin": ["c", "a", "b"],
                             "event_time": pa.array(times)}), path)
    ds = read_raw_log(path, k_core=0)
    assert items_of(ds) == ["a", "b", "c"]


def test_blank_id_found_by_the_fast_path_is_named_with_its_line(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\n1,a,1\n1,,2\n1,c,3\n")
    with pytest.raises(DataError, match=rf"{path}:3: empty item id"):
        read_raw_log(path, k_core=0)
