"""Readers for the interaction formats in use; each returns a :class:`SequenceDataset`.

Formats:

- sequence file (S3-Rec / ICLRec ``Beauty.txt``): one line per user, ``user item item ...``.
- pairs file (SASRec ``ml-1m.txt``): one interaction per line, ``user item``, in time order.
- raw log (CSV, TSV, Parquet or a headerless log such as MovieLens ``u.data``): rows of
  user, item and time; sorted, optionally de-duplicated and k-core filtered here.
- RecBole atomic ``.inter`` file: tab-separated with typed headers (``user_id:token``).

Every reader keeps users with at least 3 interactions only (one each for train, validation
and test); the others are skipped with a warning and counted in
``skipped["users_shorter_than_3"]``. Bad input raises :class:`DataError` naming ``path:line:``.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.split import MIN_LENGTH

SHORT_USERS_KEY = "users_shorter_than_3"

# Separator implied by a file extension; others are sniffed from the first line.
# ".dat": MovieLens 1M / 10M (GroupLens' ratings.dat, "user::item::rating::time").
_SEPARATOR_BY_EXTENSION = {".csv": ",", ".tsv": "\t", ".data": "\t", ".inter": "\t",
                           ".dat": "::"}


# --------------------------------------------------------------------------------------------
# One-line-per-user and pairs formats (integer item ids)
# --------------------------------------------------------------------------------------------


def read_sequence_file(path: str | os.PathLike) -> SequenceDataset:
    """Read a file with one line per user: ``user item item ...`` (whitespace separated).

    Items must be positive integers, oldest first. Ids already contiguous (1..M) are kept as
    they are; otherwise they are remapped to 1..M in increasing order of the original id, and
    ``item_ids`` keeps the original of each. User ids may be any token; a user may appear on
    one line only. Blank lines are ignored.

    Raises:
        DataError: missing or empty file, a user without items, a non-numeric or non-positive
            item id, or a user on two lines.
    """
    path = _existing_file(path)
    user_ids: list[str] = []
    sequences: list[np.ndarray] = []
    first_line_of_user: dict[str, int] = {}
    for lineno, line in _numbered_lines(path):
        fields = line.split()
        if not fields:
            continue
        user, items = fields[0], fields[1:]
        if not items:
            raise DataError(f"{path}:{lineno}: user {user} has no items (expected "
                            f"'user item item ...')")
        if user in first_line_of_user:
            raise DataError(f"{path}:{lineno}: user {user} already has a line (line "
                            f"{first_line_of_user[user]}); expected one line per user")
        first_line_of_user[user] = lineno
        user_ids.append(user)
        sequences.append(_positive_ints(items, path, lineno))
    if not sequences:
        raise DataError(f"{path}: empty file (expected one line per user: 'user item item ...')")
    return _integer_sequences_to_dataset(path, user_ids, sequences)


def read_pairs_file(path: str | os.PathLike) -> SequenceDataset:
    """Read a file with one interaction per line: ``user item``, in chronological order.

    The lines of one user need not be adjacent; a user's items keep the file order. Users are
    ordered by id (numerically when every id is an integer). Items follow the same rule as
    :func:`read_sequence_file` (kept if contiguous, else remapped).

    Raises:
        DataError: missing or empty file, a line without exactly two fields, or a non-numeric
            or non-positive item id.
    """
    path = _existing_file(path)
    users: list[str] = []
    items: list[int] = []
    for lineno, line in _numbered_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(f"{path}:{lineno}: expected 2 fields 'user item', found "
                            f"{len(fields)}: {line.strip()[:80]!r}")
        try:
            item = int(fields[1])
        except ValueError:
            item = None
        if item is None or item < 1:
            _positive_ints(fields[1:], path, lineno)  # raises with the reason
        users.append(fields[0])
        items.append(item)
    if not users:
        raise DataError(f"{path}: empty file (expected one 'user item' pair per line)")
    user_codes, user_labels = _encode_ids(users)
    # A stable sort by user keeps each user's items in file order.
    order = np.argsort(user_codes, kind="stable")
    item_array = np.asarray(items, dtype=np.int64)[order]
    bounds = np.flatnonzero(np.diff(user_codes[order])) + 1
    sequences = np.split(item_array, bounds)
    return _integer_sequences_to_dataset(path, user_labels, sequences)


def _positive_ints(tokens: list[str], path: Path, lineno: int) -> np.ndarray:
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        raise DataError(f"{path}:{lineno}: item id {bad!r} is not an integer") from None
    if values.size and values.min() < 1:
        raise DataError(f"{path}:{lineno}: item id {int(values.min())} is not positive "
                        f"(0 is the padding id; items must be 1, 2, ...)")
    return values


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _integer_sequences_to_dataset(path: Path, user_ids: list[str],
                                  sequences: list[np.ndarray]) -> SequenceDataset:
    """Drop short users, then keep item ids if contiguous 1..M or remap them in id order."""
    user_ids, sequences, skipped = _drop_short_users(path, user_ids, sequences)
    present = np.unique(np.concatenate(sequences))
    if present[0] != 1 or present[-1] != len(present):
        sequences = [np.searchsorted(present, s).astype(np.int64) + 1 for s in sequences]
    return SequenceDataset(sequences=sequences, num_items=len(present), name=str(path),
                           user_ids=user_ids, item_ids=[str(i) for i in present.tolist()],
                           skipped=skipped)


# --------------------------------------------------------------------------------------------
# Raw logs and RecBole atomic files (tokens and timestamps)
# --------------------------------------------------------------------------------------------


def read_raw_log(path: str | os.PathLike, *, user_col: str = "user",
                 item_col: str = "item", time_col: str | None = "timestamp",
                 sep: str | None = None, has_header: bool | None = None, k_core: int = 5,
                 drop_repeats: bool = False) -> SequenceDataset:
    """Read an interaction log (CSV, TSV, Parquet or headerless) into per-user sequences.

    Steps, in order:

    1. Read user, item and time of every row. With a header, the columns are found by name
       (a RecBole-style type suffix such as ``user_id:token`` is ignored). Without a header
       they are taken by position: 2 columns = user, item; 3 = user, item, time; 4 or more =
       user, item, rating, time (the rating and further columns are ignored), as in MovieLens
       ``u.data``. ``has_header=None`` detects a header: the first row names ``user_col`` or
       ``item_col``, or has no numeric field.
    2. Stable sort by (user, time); ties keep the original row order. ``time_col=None`` keeps
       the file order. Times are numbers or ISO 8601 dates.
    3. With ``drop_repeats``, drop an interaction that repeats the user's previous item.
    4. Iterated k-core: remove users and items with fewer than ``k_core`` interactions until
       none is left (``k_core <= 1`` turns it off).
    5. Skip users with fewer than 3 interactions (only possible when ``k_core < 3``).
    6. Remap users and items to contiguous ids in increasing order of the original id
       (numeric order when all ids are integers, else string order); ``user_ids`` and
       ``item_ids`` keep the originals.

    Counts of what steps 3-5 removed are stored in ``skipped``.

    Args:
        path: the log. ``.parquet`` needs pyarrow or pandas installed (neither is required
            by rclrec otherwise).
        user_col: user column name (header only).
        item_col: item column name (header only).
        time_col: time column name (header only); None = no time, keep file order.
        sep: field separator; None = by extension (.csv ',', .tsv/.data/.inter tab) or from
            the first line (tab, else comma, else whitespace).
        has_header: whether the first row is a header; None = detect.
        k_core: minimum interactions per user and per item.
        drop_repeats: drop immediate repeats of an item by the same user.

    Raises:
        DataError: missing or empty file, a missing column (the message lists the columns found
            and the option to set), a short row, or an unreadable timestamp.
    """
    path = _existing_file(path)
    if path.suffix.lower() == ".parquet":
        users, items, times = _read_parquet(path, user_col, item_col, time_col)
    else:
        users, items, times = _read_delimited(path, user_col, item_col, time_col, sep,
                                              has_header)
    return _log_to_dataset(path, users, items, times, k_core=k_core, drop_repeats=drop_repeats)


def read_atomic_inter(path: str | os.PathLike, *, user_col: str = "user_id",
                      item_col: str = "item_id",
                      time_col: str = "timestamp") -> SequenceDataset:
    """Read a RecBole atomic ``.inter`` file (tab-separated, header ``name:type``).

    Rows are sorted by timestamp within each user (stable, so ties keep file order) when the
    file has a ``timestamp`` column, else kept in file order. No k-core filtering is applied
    (RecBole data sets are usually filtered already); users shorter than 3 are skipped.

    Raises:
        DataError: missing or empty file, no ``user_id`` / ``item_id`` column, a short row, or
            an unreadable timestamp.
    """
    path = _existing_file(path)
    rows = _delimited_rows(path, "\t")
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path}: empty file (expected a header such as "
                        f"'user_id:token\\titem_id:token\\ttimestamp:float')")
    names = [_strip_type(h) for h in header[1]]
    use_time = time_col if time_col in names else None
    columns = _column_indices(f"{path}:{header[0]}", names,
                              {"user_col": user_col, "item_col": item_col, "time_col": use_time})
    users, items, times = _collect_rows(path, rows, columns)
    return _log_to_dataset(path, users, items, times, k_core=0, drop_repeats=False)


def _read_delimited(path: Path, user_col: str, item_col: str,
                    time_col: str | None, sep: str | None, has_header: bool | None):
    if sep is None:
        sep = _SEPARATOR_BY_EXTENSION.get(path.suffix.lower()) or _sniff_separator(path)
    rows = _delimited_rows(path, sep)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (expected rows of user, item and time)")
    first_line, first_fields = first
    names = [_strip_type(f) for f in first_fields]
    header_guessed = has_header is None
    if has_header is None:
        has_header = (user_col in names or item_col in names
                      or not any(_is_number(f) for f in first_fields))
    if has_header:
        wanted = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
        columns = _column_indices(f"{path}:{first_line}", names, wanted, header_guessed)
        return _collect_rows(path, rows, columns)
    width = len(first_fields)
    if width < 2:
        raise DataError(f"{path}:{first_line}: expected at least 2 columns (user, item), "
                        f"found {width}")
    # Headerless columns by position: user, item, [rating], time (MovieLens u.data).
    time_index = {2: None, 3: 2}.get(width, 3)
    columns = {"user_col": 0, "item_col": 1, "time_col": time_index}
    return _collect_rows(path, _chain_one(first, rows), columns)


def _sniff_separator(path: Path) -> str | None:
    for _, line in _numbered_lines(path):
        if line.strip():
            return "\t" if "\t" in line else "," if "," in line else None
    return None


def _delimited_rows(path: Path, sep: str | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, stripped fields) of the non-blank rows; sep None = whitespace."""
    if sep is None or len(sep) > 1:  # the csv module takes one-character separators only
        for lineno, line in _numbered_lines(path):
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


def _strip_type(name: str) -> str:
    """``user_id:token`` -> ``user_id`` (RecBole typed headers)."""
    return name.split(":", 1)[0].strip()


def _column_indices(where: str, names: list[str], wanted: dict[str, str | None],
                    header_guessed: bool = False) -> dict[str, int | None]:
    """Index of each wanted column (None stays None); ``where`` is ``path:line`` of the header."""
    columns: dict[str, int | None] = {}
    for option, name in wanted.items():
        if name is None:
            columns[option] = None
        elif name in names:
            columns[option] = names.index(name)
        else:
            hint = " (or time_col=None to keep file order)" if option == "time_col" else ""
            if header_guessed:
                hint += "; if the file has no header, pass has_header=False"
            raise DataError(f"{where}: no column {name!r}; columns found: "
                            f"{', '.join(names)}; set the column with "
                            f"--set data.{option}=NAME{hint}")
    return columns


def _collect_rows(path: Path, rows: Iterator[tuple[int, list[str]]],
                  columns: dict[str, int | None]):
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
            times.append(_parse_time(fields[time_i], path, lineno))
    if not users:
        raise DataError(f"{path}: no data rows")
    time_array = np.asarray(times, dtype=np.float64) if time_i is not None else None
    return users, items, time_array


def _parse_time(text: str, path: Path, where: int | str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise DataError(f"{path}:{where}: timestamp {text!r} is neither a number nor an ISO "
                        f"8601 date") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path, user_col: str, item_col: str,
                  time_col: str | None):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        table = pq.read_table(path)
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
    else:
        try:
            import pandas as pd
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs the package 'pyarrow' or "
                            f"'pandas' (pip install pyarrow); neither is installed") from None
        frame = pd.read_parquet(path)
        columns = {str(name): frame[name].tolist() for name in frame.columns}
    names = list(columns)
    wanted = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    index = _column_indices(str(path), [_strip_type(n) for n in names], wanted)
    users = [str(v) for v in columns[names[index["user_col"]]]]
    items = [str(v) for v in columns[names[index["item_col"]]]]
    if not users:
        raise DataError(f"{path}: no data rows")
    times = None
    if index["time_col"] is not None:
        raw = columns[names[index["time_col"]]]
        times = np.array([v.timestamp() if hasattr(v, "timestamp")
                          else _parse_time(str(v), path, f"row {r + 1}")
                          for r, v in enumerate(raw)], dtype=np.float64)
    return users, items, times


def _log_to_dataset(path: Path, users: list[str], items: list[str], times: np.ndarray | None,
                    *, k_core: int, drop_repeats: bool) -> SequenceDataset:
    """Sort, de-duplicate, k-core filter and remap a log of (user, item, time) rows."""
    user_codes, user_labels = _encode_ids(users)
    item_codes, item_labels = _encode_ids(items)
    row_order = np.arange(len(users))
    # lexsort sorts by the last key first: user, then time, then original row as tie-breaker.
    keys = (row_order, user_codes) if times is None else (row_order, times, user_codes)
    order = np.lexsort(keys)
    user_codes, item_codes = user_codes[order], item_codes[order]
    skipped: dict[str, int] = {}

    if drop_repeats:
        repeat = np.zeros(len(order), dtype=bool)
        repeat[1:] = (user_codes[1:] == user_codes[:-1]) & (item_codes[1:] == item_codes[:-1])
        skipped["immediate_repeats"] = int(repeat.sum())
        user_codes, item_codes = user_codes[~repeat], item_codes[~repeat]

    if k_core > 1:
        keep = _k_core_mask(user_codes, item_codes, k_core)
        skipped["k_core_interactions"] = int((~keep).sum())
        skipped["k_core_users"] = int(len(np.unique(user_codes)) -
                                      len(np.unique(user_codes[keep])))
        skipped["k_core_items"] = int(len(np.unique(item_codes)) -
                                      len(np.unique(item_codes[keep])))
        user_codes, item_codes = user_codes[keep], item_codes[keep]
        if not len(user_codes):
            raise DataError(f"{path}: no interactions left after {k_core}-core filtering "
                            f"(lower --set data.k_core=...)")

    bounds = np.flatnonzero(np.diff(user_codes)) + 1
    sequences = np.split(item_codes, bounds)
    seq_users = [user_labels[c] for c in user_codes[np.r_[0, bounds]]]
    seq_users, sequences, short = _drop_short_users(path, seq_users, sequences)
    skipped.update(short)

    # Contiguous item ids 1..M in the order of the original ids (codes are already sorted).
    present = np.unique(np.concatenate(sequences))
    sequences = [np.searchsorted(present, s).astype(np.int64) + 1 for s in sequences]
    return SequenceDataset(sequences=sequences, num_items=len(present), name=str(path),
                           user_ids=seq_users, item_ids=[item_labels[c] for c in present],
                           skipped=skipped)


def _k_core_mask(user_codes: np.ndarray, item_codes: np.ndarray, k: int) -> np.ndarray:
    """Rows kept by the iterated k-core: every kept user and item has >= k kept rows."""
    keep = np.ones(len(user_codes), dtype=bool)
    while True:
        user_counts = np.bincount(user_codes[keep], minlength=user_codes.max() + 1)
        item_counts = np.bincount(item_codes[keep], minlength=item_codes.max() + 1)
        new_keep = keep & (user_counts[user_codes] >= k) & (item_counts[item_codes] >= k)
        if new_keep.sum() == keep.sum():
            return keep
        keep = new_keep


def _encode_ids(tokens: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes 0..K-1 of the tokens in increasing id order (numeric if all are integers)."""
    unique_labels, codes = np.unique(np.asarray(tokens, dtype=str), return_inverse=True)
    labels: list[str] = unique_labels.tolist()
    try:
        numbers = np.array([int(t) for t in labels], dtype=np.int64)
    except ValueError:
        numbers = None
    # Numeric order only when it is a bijection ("7" and "007" would otherwise merge).
    if numbers is not None and len(np.unique(numbers)) == len(labels):
        rank = np.argsort(numbers, kind="stable")
        position = np.empty_like(rank)
        position[rank] = np.arange(len(rank))
        return position[codes].astype(np.int64), [labels[i] for i in rank.tolist()]
    return codes.astype(np.int64), labels


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    return path


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def _drop_short_users(path: Path, user_ids: list[str], sequences: list[np.ndarray]
                      ) -> tuple[list[str], list[np.ndarray], dict[str, int]]:
    """Leave-one-out needs 3 items per user; skip shorter users with a warning and a count."""
    long_enough = [i for i, s in enumerate(sequences) if len(s) >= MIN_LENGTH]
    num_short = len(sequences) - len(long_enough)
    if num_short:
        warnings.warn(f"{path}: skipped {num_short} users with fewer than {MIN_LENGTH} "
                      f"interactions (leave-one-out needs {MIN_LENGTH})", stacklevel=3)
    if not long_enough:
        raise DataError(f"{path}: no user has {MIN_LENGTH} or more interactions")
    return ([user_ids[i] for i in long_enough], [sequences[i] for i in long_enough],
            {SHORT_USERS_KEY: num_short})
