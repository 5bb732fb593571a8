"""Interaction logs: raw logs (CSV, TSV, Parquet, headerless) and RecBole ``.inter`` files.

A log holds rows of user, item and time. Reading one takes four steps:

1. Find the columns: a header's usual names are recognised (see ``USER_COLUMNS`` ...), a name
   given by the caller always wins, two candidates for one role or a name used twice are
   errors; a headerless file is read by position (docs/DATA.md).
2. Read the columns with pyarrow (columnar and multi-threaded). Python's csv module reads the
   files pyarrow cannot (whitespace-separated) and re-reads a file whose fast read found bad
   input, so that every error names its line.
3. Check the times: a missing, non-finite or unparsable time is an error naming its line, or,
   with ``bad_times="drop"``, its row is dropped and counted.
4. Sort, drop repeats, k-core filter and remap (:func:`log_to_dataset`).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.io import SHORT_USERS_KEY, encode_ids, existing_file, numbered_lines
from rclrec.data.split import MIN_LENGTH

AUTO = "auto"  # a column option that asks for the usual names to be recognised
# Usual column names, recognised in a header without settings (case-insensitive).
USER_COLUMNS = ("user", "user_id", "userid", "uid", "visitorid", "customer_id")
ITEM_COLUMNS = ("item", "item_id", "itemid", "movieid", "product_id", "asin", "track_id")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date", "event_time")
_USUAL = {"user_col": USER_COLUMNS, "item_col": ITEM_COLUMNS, "time_col": TIME_COLUMNS}
_ROLE = {"user_col": "user", "item_col": "item", "time_col": "time"}

BAD_TIMES = ("error", "drop")  # what to do with a missing, non-finite or unparsable time
BAD_TIMES_KEY = "rows_with_bad_timestamps"

# Separator implied by a file extension; others are sniffed from the first line.
# ".dat": MovieLens 1M / 10M (GroupLens' ratings.dat, "user::item::rating::time").
_SEPARATOR_BY_EXTENSION = {".csv": ",", ".tsv": "\t", ".data": "\t", ".inter": "\t",
                           ".dat": "::"}


@dataclass
class Log:
    """The rows of a log, ids encoded (codes in increasing id order, see ``encode_ids``)."""

    user_codes: np.ndarray  # (N,) int32 (int64 beyond 2**31 ids); None once consumed
    user_labels: list[str]
    item_codes: np.ndarray  # (N,) int32 (int64 beyond 2**31 ids); None once consumed
    item_labels: list[str]
    times: np.ndarray | None  # (N,) float64 seconds, NaN = missing; None = keep file order


class _NeedsLineNumbers(Exception):
    """The fast read met input it does not take; the row-by-row reader names the line."""


def read_raw_log(path: str | os.PathLike, *, user_col: str = AUTO, item_col: str = AUTO,
                 time_col: str | None = AUTO, sep: str | None = None,
                 has_header: bool | None = None, k_core: int = 5, drop_repeats: bool = False,
                 bad_times: str = "error", min_length: int = MIN_LENGTH) -> SequenceDataset:
    """Read an interaction log (CSV, TSV, Parquet or headerless) into per-user sequences.

    Steps, in order:

    1. Read user, item and time of every row. With a header, the columns are found by name
       (a RecBole-style type suffix such as ``user_id:token`` is ignored); ``auto`` finds the
       usual names (``USER_COLUMNS``, ``ITEM_COLUMNS``, ``TIME_COLUMNS``, any case). Without a
       header they are taken by position: 2 columns = user, item; 3 = user, item, time; 4 or
       more = user, item, rating, time (the rating and further columns are ignored), as in
       MovieLens ``u.data``. ``has_header=None`` detects a header: the first row holds a usual
       or given column name, or none of its fields is a number or an ISO 8601 time.
    2. Times are numbers or ISO 8601 dates (naive ones are read as UTC). A missing, non-finite
       or unparsable time is an error naming its line, or its row is dropped and counted with
       ``bad_times="drop"``.
    3. Stable sort by (user, time); ties keep the original row order. ``time_col=None`` keeps
       the file order.
    4. With ``drop_repeats``, drop an interaction that repeats the user's previous item.
    5. Iterated k-core: remove users and items with fewer than ``k_core`` interactions until
       none is left (``k_core <= 1`` turns it off).
    6. Skip users with fewer than ``min_length`` interactions.
    7. Remap users and items to contiguous ids in increasing order of the original id
       (numeric order when all ids are integers within 64 bits, else string order);
       ``user_ids`` and ``item_ids`` keep the originals, ``times`` the sorted times.

    Counts of what steps 2 and 4-6 removed are stored in ``skipped``.

    Args:
        path: the log (``.parquet`` for Parquet, any other name for delimited text).
        user_col: user column name, or ``auto``.
        item_col: item column name, or ``auto``.
        time_col: time column name, ``auto``, or None (no time: keep the file order).
        sep: field separator; None = by extension (.csv ',', .tsv/.data/.inter tab) or from
            the first line (tab, else comma, else whitespace).
        has_header: whether the first row is a header; None = detect.
        k_core: minimum interactions per user and per item.
        drop_repeats: drop immediate repeats of an item by the same user.
        bad_times: ``error`` or ``drop`` (rows whose time is missing or unparsable).
        min_length: users with fewer interactions are skipped (3 for leave-one-out).

    Raises:
        DataError: missing or empty file, a missing, ambiguous or repeated column (the message
            lists the columns found and the option to set), a short row, a blank id, or a bad
            timestamp.
    """
    if bad_times not in BAD_TIMES:
        raise DataError(f"data.bad_times={bad_times!r}: expected one of {', '.join(BAD_TIMES)}")
    path = existing_file(path)
    wanted = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    if path.suffix.lower() == ".parquet":
        log = _read_parquet(path, wanted, bad_times)
    else:
        log = _read_delimited(path, wanted, sep, has_header, bad_times)
    return log_to_dataset(path, log, k_core=k_core, drop_repeats=drop_repeats,
                          min_length=min_length)


def read_atomic_inter(path: str | os.PathLike, *, user_col: str = "user_id",
                      item_col: str = "item_id",
                      time_col: str = "timestamp", min_length: int = MIN_LENGTH
                      ) -> SequenceDataset:
    """Read a RecBole atomic ``.inter`` file (tab-separated, header ``name:type``).

    Rows are sorted by timestamp within each user (stable, so ties keep file order) when the
    file has a ``timestamp`` column, else kept in file order. No k-core filtering is applied
    (RecBole data sets are usually filtered already); users shorter than ``min_length`` are
    skipped.

    Raises:
        DataError: missing or empty file, no ``user_id`` / ``item_id`` column, a short row, or
            an unreadable timestamp.
    """
    path = existing_file(path)
    rows = _delimited_rows(path, "\t")
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path}: empty file (expected a header such as "
                        f"'user_id:token\\titem_id:token\\ttimestamp:float')")
    names = [_strip_type(h) for h in header[1]]
    use_time = time_col if time_col in names else None
    columns = _pick_columns(f"{path}:{header[0]}", names,
                            {"user_col": user_col, "item_col": item_col, "time_col": use_time})
    log = _collect_rows(path, rows, columns, "error")
    return log_to_dataset(path, log, k_core=0, drop_repeats=False, min_length=min_length)


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def _strip_type(name: str) -> str:
    """``user_id:token`` -> ``user_id`` (RecBole typed headers)."""
    return name.split(":", 1)[0].strip()


def _looks_like_header(fields: list[str], wanted: dict[str, str | None]) -> bool:
    names = {_strip_type(f).lower() for f in fields}
    known = {n for usual in _USUAL.values() for n in usual}
    known |= {v.lower() for v in wanted.values() if v not in (None, AUTO)}
    if names & known:
        return True
    return not any(_is_number(f) or math.isfinite(time_or_nan(f)) for f in fields)


def _pick_columns(where: str, names: list[str], wanted: dict[str, str | None],
                  header_guessed: bool = False) -> dict[str, int | None]:
    """Index of each wanted column (None stays None); ``where`` is ``path:line`` of the header.

    ``auto`` takes the one header name that is a usual name for the role (any case).
    """
    for position, name in enumerate(names):
        if name in names[:position]:
            raise DataError(f"{where}: column {name!r} appears more than once in the header "
                            f"(columns {names.index(name) + 1} and {position + 1}); rename one "
                            f"so that the right column is read")
    columns: dict[str, int | None] = {}
    for option, name in wanted.items():
        if name is None:
            columns[option] = None
            continue
        hint = " (or time_col=none to keep file order)" if option == "time_col" else ""
        if header_guessed:
            hint += "; if the file has no header, pass has_header=False"
        if name == AUTO:
            found = [i for i, n in enumerate(names) if n.lower() in _USUAL[option]]
            if len(found) > 1:
                listed = " and ".join(repr(names[i]) for i in found)
                raise DataError(f"{where}: columns {listed} could each be the "
                                f"{_ROLE[option]} column; choose one with "
                                f"--set data.{option}=NAME")
            if not found:
                raise DataError(f"{where}: no {_ROLE[option]} column (none of the usual names "
                                f"{', '.join(_USUAL[option])}); columns found: "
                                f"{', '.join(names)}; set the column with "
                                f"--set data.{option}=NAME{hint}")
            columns[option] = found[0]
        elif name in names:
            columns[option] = names.index(name)
        else:
            raise DataError(f"{where}: no column {name!r}; columns found: "
                            f"{', '.join(names)}; set the column with "
                            f"--set data.{option}=NAME{hint}")
    return columns


# --------------------------------------------------------------------------------------------
# Delimited text: pyarrow first, Python's csv module for what it does not take
# --------------------------------------------------------------------------------------------


def _read_delimited(path: Path, wanted: dict[str, str | None], sep: str | None,
                    has_header: bool | None, bad_times: str) -> Log:
    if sep is None:
        sep = _SEPARATOR_BY_EXTENSION.get(path.suffix.lower()) or _sniff_separator(path)
    rows = _delimited_rows(path, sep)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (expected rows of user, item and time)")
    first_line, first_fields = first
    header_guessed = has_header is None
    if has_header is None:
        has_header = _looks_like_header(first_fields, wanted)
    if has_header:
        names = [_strip_type(f) for f in first_fields]
        columns = _pick_columns(f"{path}:{first_line}", names, wanted, header_guessed)
    else:
        width = len(first_fields)
        if width < 2:
            raise DataError(f"{path}:{first_line}: expected at least 2 columns (user, item), "
                            f"found {width}")
        # Headerless columns by position: user, item, [rating], time (MovieLens u.data).
        time_index = None if wanted["time_col"] is None else {2: None, 3: 2}.get(width, 3)
        columns = {"user_col": 0, "item_col": 1, "time_col": time_index}
        rows = _chain_one(first, rows)
    # pyarrow and the csv module take one-character separators only.
    if sep is not None and len(sep) == 1 and first_line == 1 and not _starts_with_bom(path):
        try:
            return _read_delimited_fast(path, sep, has_header, len(first_fields), columns,
                                        bad_times)
        except _NeedsLineNumbers:
            pass
    return _collect_rows(path, rows, columns, bad_times)


def _read_delimited_fast(path: Path, sep: str, has_header: bool, width: int,
                         columns: dict[str, int | None], bad_times: str) -> Log:
    """The columns read by pyarrow; _NeedsLineNumbers when a row or value needs a closer look."""
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(width)]
    picked = {option: names[i] for option, i in columns.items() if i is not None}
    ids = pa.dictionary(pa.int32(), pa.string())  # 4 bytes a row instead of the string
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(has_header)),
            # Tab-separated logs are not quoted; a stray quote must not swallow lines.
            parse_options=pacsv.ParseOptions(delimiter=sep,
                                             quote_char=False if sep == "\t" else '"'),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(dict.fromkeys(picked.values())),
                column_types={picked["user_col"]: ids, picked["item_col"]: ids}))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _NeedsLineNumbers from None  # short or long rows, bad UTF-8, ...
    if table.num_rows == 0:
        raise _NeedsLineNumbers
    users, items = (_trimmed_ids(table.column(picked[o])) for o in ("user_col", "item_col"))
    if _first_missing_id(users) is not None or _first_missing_id(items) is not None:
        raise _NeedsLineNumbers
    times = None
    if "time_col" in picked:
        times = _column_times(table.column(picked["time_col"]))
        if bad_times == "error" and not np.isfinite(times).all():
            raise _NeedsLineNumbers
    return Log(*encode_ids(users), *encode_ids(items), times)


def _starts_with_bom(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(3) == b"\xef\xbb\xbf"


def _sniff_separator(path: Path) -> str | None:
    for _, line in numbered_lines(path):
        if line.strip():
            return "\t" if "\t" in line else "," if "," in line else None
    return None


def _delimited_rows(path: Path, sep: str | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, stripped fields) of the non-blank rows; sep None = whitespace."""
    if sep is None or len(sep) > 1:  # the csv module takes one-character separators only
        for lineno, line in numbered_lines(path):
            fields = [x.strip() for x in line.split(sep)] if line.strip() else []
            if fields:
                yield lineno, fields
        return
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            # Tab-separated logs are not quoted; a stray quote must not swallow lines.
            quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
            reader = csv.reader(f, delimiter=sep, quoting=quoting)
            for fields in reader:
                fields = [x.strip() for x in fields]
                if any(fields):
                    yield reader.line_num, fields
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def _chain_one(first, rest):
    yield first
    yield from rest


def _collect_rows(path: Path, rows: Iterator[tuple[int, list[str]]],
                  columns: dict[str, int | None], bad_times: str) -> Log:
    """The row-by-row reader: slower, and every error names its line."""
    user_i, item_i, time_i = columns["user_col"], columns["item_col"], columns["time_col"]
    needed = max(i for i in (user_i, item_i, time_i) if i is not None) + 1
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    for lineno, fields in rows:
        if len(fields) < needed:
            raise DataError(f"{path}:{lineno}: expected at least {needed} fields, found "
                            f"{len(fields)}")
        user, item = fields[user_i], fields[item_i]
        if not user or not item:
            raise DataError(f"{path}:{lineno}: empty {'user' if not user else 'item'} id")
        users.append(user)
        items.append(item)
        if time_i is not None:
            time = time_or_nan(fields[time_i])
            if bad_times == "error" and not math.isfinite(time):
                raise _bad_time(f"{path}:{lineno}", fields[time_i])
            times.append(time)
    if not users:
        raise DataError(f"{path}: no data rows")
    time_array = np.asarray(times, dtype=np.float64) if time_i is not None else None
    return Log(*encode_ids(users), *encode_ids(items), time_array)


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------


def _read_parquet(path: Path, wanted: dict[str, str | None], bad_times: str) -> Log:
    """The columns, one row group at a time: each group's times become float64 seconds and its
    ids a dictionary-encoded chunk before the next group is read, so that the text of the time
    column and of the ids is never in memory for the whole file at once."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a Parquet file ({e})") from None
    names = schema.names
    columns = _pick_columns(str(path), [_strip_type(n) for n in names], wanted)
    picked = {option: names[i] for option, i in columns.items() if i is not None}
    strings = [picked[o] for o in ("user_col", "item_col")
               if pa.types.is_string(schema.field(picked[o]).type)
               or pa.types.is_large_string(schema.field(picked[o]).type)]
    file = pq.ParquetFile(path, read_dictionary=strings)
    id_chunks: dict[str, list[pa.ChunkedArray]] = {"user_col": [], "item_col": []}
    time_chunks: list[np.ndarray] = []
    offset = 0  # rows of the groups before this one
    for group in range(file.num_row_groups):
        table = file.read_row_group(group, columns=list(dict.fromkeys(picked.values())))
        if table.num_rows == 0:  # a writer may leave an empty group
            continue
        for option, chunks in id_chunks.items():
            column = _trimmed_ids(table.column(picked[option]))
            row = _first_missing_id(column)
            if row is not None:
                raise DataError(f"{path}: row {offset + row + 1}: empty {_ROLE[option]} id")
            chunks.append(column)
        if "time_col" in picked:
            times = _column_times(table.column(picked["time_col"]))
            bad = np.flatnonzero(~np.isfinite(times))
            if bad_times == "error" and len(bad):
                value = table.column(picked["time_col"])[int(bad[0])].as_py()
                raise _bad_time(f"{path}: row {offset + bad[0] + 1}",
                                "" if value is None else str(value))
            time_chunks.append(times)
        offset += table.num_rows
        del table
    if offset == 0:
        raise DataError(f"{path}: no data rows")
    encoded = []
    for chunks in id_chunks.values():
        encoded += encode_ids(pa.chunked_array([c for column in chunks for c in column.chunks]))
        chunks.clear()
    times = np.concatenate(time_chunks) if time_chunks else None
    del time_chunks
    pa.default_memory_pool().release_unused()  # give freed Arrow memory back to NumPy's heap
    return Log(*encoded, times)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _trimmed_ids(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Ids without surrounding blanks, as the row-by-row reader strips its fields."""
    if pa.types.is_integer(column.type):
        return column
    dictionaries = [c.dictionary for c in column.chunks] if pa.types.is_dictionary(
        column.type) else [column]
    if all(pc.all(pc.equal(pc.utf8_trim_whitespace(d.cast(pa.string())),
                           d.cast(pa.string()))).as_py() in (True, None)
           for d in dictionaries):
        return column
    return pc.utf8_trim_whitespace(column.cast(pa.string()))


def _first_missing_id(column: pa.ChunkedArray) -> int | None:
    """Row of the first null or empty id, None when every row has one."""
    offset = 0
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            blank = np.flatnonzero(np.asarray(pc.equal(chunk.dictionary, "")
                                              .fill_null(True)))
            if len(blank) or chunk.null_count:
                missing = (np.asarray(chunk.is_null())
                           | np.isin(np.asarray(chunk.indices.fill_null(0)), blank))
                if missing.any():
                    return offset + int(np.argmax(missing))
        elif pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
            missing = np.asarray(pc.equal(chunk, "").fill_null(True))
            if missing.any():
                return offset + int(np.argmax(missing))
        elif chunk.null_count:
            return offset + int(np.argmax(np.asarray(chunk.is_null())))
        offset += len(chunk)
    return None


def _column_times(column: pa.ChunkedArray) -> np.ndarray:
    """Seconds since 1970 of a time column (numbers, dates, timestamps or text); NaN = bad."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        unit = pa.timestamp("us", tz=getattr(kind, "tz", None))
        micros = pc.cast(pc.cast(column, unit), pa.int64())
        return np.asarray(pc.divide(pc.cast(micros, pa.float64()), 1e6).fill_null(np.nan))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return np.asarray(pc.cast(column, pa.float64()).fill_null(np.nan))
    text = pc.utf8_trim_whitespace(column.cast(pa.string()))
    targets = [pa.float64(), pa.timestamp("us"), pa.timestamp("us", tz="UTC")]
    if not _is_number(str(text[0])):  # try dates first: a failed cast reads the whole column
        targets = targets[1:] + targets[:1]
    for target in targets:
        try:
            return _column_times(pc.cast(text, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Mixed forms (time zones on some rows only) or bad values: parse each distinct value.
    encoded = pc.dictionary_encode(text).combine_chunks()
    seconds = np.array([time_or_nan(v) for v in encoded.dictionary.to_pylist()] + [np.nan])
    codes = np.asarray(encoded.indices.fill_null(len(encoded.dictionary)), dtype=np.int64)
    return seconds[codes]


def time_or_nan(text: str | None) -> float:
    """A number, or an ISO 8601 date (naive = UTC), as seconds; NaN when it is neither."""
    if text is None:
        return math.nan
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return math.nan
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _bad_time(where: str, text: str) -> DataError:
    return DataError(f"{where}: timestamp {text!r} is missing, not finite, or neither a number "
                     f"nor an ISO 8601 date; fix the row, or drop such rows with "
                     f"--set data.bad_times=drop")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# From rows to sequences
# --------------------------------------------------------------------------------------------


def log_to_dataset(path: Path, log: Log, *, k_core: int, drop_repeats: bool,
                   min_length: int = MIN_LENGTH) -> SequenceDataset:
    """Drop rows without a time, sort, de-duplicate, k-core filter, drop short users, remap.

    Takes over ``log``'s arrays (they are set to None), so that each step's input is freed as
    soon as its output exists.
    """
    user_codes, item_codes, times = log.user_codes, log.item_codes, log.times
    log.user_codes = log.item_codes = log.times = None
    skipped: dict[str, int] = {}
    if times is not None:
        bad = ~np.isfinite(times)
        if bad.any():  # only with bad_times="drop": the readers raise otherwise
            skipped[BAD_TIMES_KEY] = int(bad.sum())
            warnings.warn(f"{path}: dropped {skipped[BAD_TIMES_KEY]} rows with a missing or "
                          f"unparsable timestamp (data.bad_times=drop)", stacklevel=3)
            user_codes, item_codes, times = user_codes[~bad], item_codes[~bad], times[~bad]
            if not len(user_codes):
                raise DataError(f"{path}: no row has a valid timestamp")

    order = _user_time_order(user_codes, times)
    user_codes = user_codes[order]
    item_codes = item_codes[order]
    times = times[order] if times is not None else None
    del order

    def keep_rows(mask: np.ndarray) -> None:
        nonlocal user_codes, item_codes, times
        user_codes = user_codes[mask]  # one at a time: each input is freed before the next
        item_codes = item_codes[mask]
        times = times[mask] if times is not None else None

    if drop_repeats:
        repeat = np.zeros(len(user_codes), dtype=bool)
        repeat[1:] = (user_codes[1:] == user_codes[:-1]) & (item_codes[1:] == item_codes[:-1])
        skipped["immediate_repeats"] = int(repeat.sum())
        keep_rows(~repeat)

    if k_core > 1:
        keep = _k_core_mask(user_codes, item_codes, k_core)
        skipped["k_core_interactions"] = int((~keep).sum())
        skipped["k_core_users"] = _distinct(user_codes) - _distinct(user_codes[keep])
        skipped["k_core_items"] = _distinct(item_codes) - _distinct(item_codes[keep])
        keep_rows(keep)
        if not len(user_codes):
            raise DataError(f"{path}: no interactions left after {k_core}-core filtering "
                            f"(lower --set data.k_core=...)")

    starts = np.r_[0, np.flatnonzero(np.diff(user_codes)) + 1]
    lengths = np.diff(np.r_[starts, len(user_codes)])
    long_enough = lengths >= min_length
    skipped[SHORT_USERS_KEY] = int((~long_enough).sum())
    if skipped[SHORT_USERS_KEY]:
        warnings.warn(f"{path}: skipped {skipped[SHORT_USERS_KEY]} users with fewer than "
                      f"{min_length} interactions", stacklevel=3)
    if not long_enough.any():
        raise DataError(f"{path}: no user has {min_length} or more interactions")
    keep_rows(np.repeat(long_enough, lengths))

    # Contiguous item ids 1..M in the order of the original ids (codes are in that order).
    present = np.zeros(len(log.item_labels), dtype=bool)
    present[item_codes] = True
    new_id = np.cumsum(present)  # 1..M at the present codes
    item_codes = new_id[item_codes]
    bounds = np.flatnonzero(np.diff(user_codes)) + 1
    seq_users = [log.user_labels[c] for c in user_codes[np.r_[0, bounds]].tolist()]
    return SequenceDataset(
        sequences=np.split(item_codes, bounds), num_items=int(new_id[-1]), name=str(path),
        user_ids=seq_users, item_ids=[log.item_labels[c] for c in np.flatnonzero(present)],
        skipped=skipped, times=np.split(times, bounds) if times is not None else None)


def _user_time_order(user_codes: np.ndarray, times: np.ndarray | None) -> np.ndarray:
    """Rows by user, then time, then row number (two stable sorts)."""
    if times is None:
        return np.argsort(user_codes, kind="stable")
    order = np.argsort(times, kind="stable")
    return order[np.argsort(user_codes[order], kind="stable")]


def _distinct(codes: np.ndarray) -> int:
    return int(np.count_nonzero(np.bincount(codes))) if len(codes) else 0


def _k_core_mask(user_codes: np.ndarray, item_codes: np.ndarray, k: int) -> np.ndarray:
    """Rows kept by the iterated k-core: every kept user and item has >= k kept rows."""
    keep = np.ones(len(user_codes), dtype=bool)
    while True:
        user_counts = np.bincount(user_codes[keep], minlength=user_codes.max() + 1)
        item_counts = np.bincount(item_codes[keep], minlength=item_codes.max() + 1)
        # Looked up as booleans: one byte a row instead of the counts' eight.
        new_keep = keep & (user_counts >= k)[user_codes] & (item_counts >= k)[item_codes]
        if new_keep.sum() == keep.sum():
            return keep
        keep = new_keep
