"""Readers of the formats with integer item ids, and helpers shared with the log readers.

Formats read here:

- sequence file (S3-Rec / ICLRec ``Beauty.txt``): one line per user, ``user item item ...``.
- pairs file (SASRec ``ml-1m.txt``): one interaction per line, ``user item``, in time order.

Raw logs (CSV, TSV, Parquet, headerless) and RecBole ``.inter`` files are read by
:mod:`rclrec.data.logs`. Every reader keeps users with at least 3 interactions only (one each
for train, validation and test) unless told otherwise; the others are skipped with a warning and
counted in ``skipped["users_shorter_than_3"]``. Bad input raises :class:`DataError` naming
``path:line:``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.split import MIN_LENGTH

SHORT_USERS_KEY = "users_shorter_than_3"
_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------------------------
# One-line-per-user and pairs formats (integer item ids)
# --------------------------------------------------------------------------------------------


def read_sequence_file(path: str | os.PathLike, *, min_length: int = MIN_LENGTH
                       ) -> SequenceDataset:
    """Read a file with one line per user: ``user item item ...`` (whitespace separated).

    Items must be positive integers, oldest first. Ids already contiguous (1..M) are kept as
    they are; otherwise they are remapped to 1..M in increasing order of the original id, and
    ``item_ids`` keeps the original of each. User ids may be any token; a user may appear on
    one line only. Blank lines are ignored.

    Raises:
        DataError: missing or empty file, a user without items, a non-numeric or non-positive
            item id, or a user on two lines.
    """
    path = existing_file(path)
    user_ids: list[str] = []
    sequences: list[np.ndarray] = []
    first_line_of_user: dict[str, int] = {}
    for lineno, line in numbered_lines(path):
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
    return _integer_sequences_to_dataset(path, user_ids, sequences, min_length)


def read_pairs_file(path: str | os.PathLike, *, min_length: int = MIN_LENGTH) -> SequenceDataset:
    """Read a file with one interaction per line: ``user item``, in chronological order.

    The lines of one user need not be adjacent; a user's items keep the file order. Users are
    ordered by id (numerically when every id is an integer). Items follow the same rule as
    :func:`read_sequence_file` (kept if contiguous, else remapped).

    Raises:
        DataError: missing or empty file, a line without exactly two fields, or a non-numeric
            or non-positive item id.
    """
    path = existing_file(path)
    users: list[str] = []
    items: list[int] = []
    for lineno, line in numbered_lines(path):
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
        if item is None or not 1 <= item <= _INT64_MAX:
            _positive_ints(fields[1:], path, lineno)  # raises with the reason
        users.append(fields[0])
        items.append(item)
    if not users:
        raise DataError(f"{path}: empty file (expected one 'user item' pair per line)")
    user_codes, user_labels = encode_ids(users)
    # A stable sort by user keeps each user's items in file order.
    order = np.argsort(user_codes, kind="stable")
    item_array = np.asarray(items, dtype=np.int64)[order]
    bounds = np.flatnonzero(np.diff(user_codes[order])) + 1
    sequences = np.split(item_array, bounds)
    return _integer_sequences_to_dataset(path, user_labels, sequences, min_length)


def _positive_ints(tokens: list[str], path: Path, lineno: int) -> np.ndarray:
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        raise DataError(f"{path}:{lineno}: item id {bad!r} is not an integer") from None
    except OverflowError:
        bad = next(t for t in tokens if abs(int(t)) > _INT64_MAX)
        raise DataError(f"{path}:{lineno}: item id {bad} is too large (this format needs "
                        f"integer ids below 2**63; a raw log such as a CSV file takes any "
                        f"token as an id)") from None
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


def _integer_sequences_to_dataset(path: Path, user_ids: list[str], sequences: list[np.ndarray],
                                  min_length: int) -> SequenceDataset:
    """Drop short users, then keep item ids if contiguous 1..M or remap them in id order."""
    kept, skipped = drop_short_users(path, sequences, min_length)
    user_ids, sequences = [user_ids[i] for i in kept], [sequences[i] for i in kept]
    present = np.unique(np.concatenate(sequences))
    if present[0] != 1 or present[-1] != len(present):
        sequences = [np.searchsorted(present, s).astype(np.int64) + 1 for s in sequences]
    return SequenceDataset(sequences=sequences, num_items=len(present), name=str(path),
                           user_ids=user_ids, item_ids=[str(i) for i in present.tolist()],
                           skipped=skipped)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def existing_file(path: str | os.PathLike) -> Path:
    """The path of an existing regular file, else a DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give the data file inside it")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    return path


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file; a DataError names a file that is not."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def drop_short_users(path: Path, sequences: list[np.ndarray], min_length: int = MIN_LENGTH
                     ) -> tuple[list[int], dict[str, int]]:
    """Indices of the users with ``min_length`` or more items, and the count of the others.

    Leave-one-out needs 3 items per user; shorter users are skipped with a warning.
    """
    long_enough = [i for i, s in enumerate(sequences) if len(s) >= min_length]
    num_short = len(sequences) - len(long_enough)
    if num_short:
        warnings.warn(f"{path}: skipped {num_short} users with fewer than {min_length} "
                      f"interactions", stacklevel=3)
    if not long_enough:
        raise DataError(f"{path}: no user has {min_length} or more interactions")
    return long_enough, {SHORT_USERS_KEY: num_short}


def encode_ids(ids: pa.Array | pa.ChunkedArray | list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes 0..K-1 of the ids in increasing id order, and the K ids as strings.

    The order is numeric when every id is an integer that fits in 64 bits and no two spell the
    same number ("7" and "007"), else string order. Empty or missing ids must be checked first.

    Returns:
        codes: (N,) int32 (int64 from 2**31 distinct ids on), ``labels[codes[r]]`` is the id
            of row r.
        labels: the distinct ids in order.
    """
    if isinstance(ids, list):
        ids = pa.array(ids, type=pa.string())
    if isinstance(ids, pa.Array):
        ids = pa.chunked_array([ids])
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids)
    ids = ids.unify_dictionaries()  # CSV blocks and Parquet row groups have their own
    dictionary = ids.chunk(0).dictionary if ids.num_chunks else pa.array([], pa.string())
    numbers = dictionary if pa.types.is_integer(dictionary.type) else _as_int64(dictionary)
    if numbers is not None and len(pc.unique(numbers)) == len(dictionary):
        rank = np.argsort(np.asarray(numbers), kind="stable")
    else:
        rank = np.asarray(pc.sort_indices(dictionary.cast(pa.string())), dtype=np.int64)
    code_type = np.int32 if len(rank) < 2**31 else np.int64
    position = np.empty(len(rank), dtype=code_type)
    position[rank] = np.arange(len(rank), dtype=code_type)
    labels = dictionary.take(pa.array(rank)).cast(pa.string()).to_pylist()
    del dictionary, numbers, rank
    codes = np.empty(len(ids), dtype=code_type)
    start = 0
    for chunk in ids.chunks:  # chunk by chunk: no int64 copy of all the indices
        np.take(position, np.asarray(chunk.indices), out=codes[start:start + len(chunk)])
        start += len(chunk)
    return codes, labels


def _as_int64(values: pa.Array) -> pa.Array | None:
    """The values as int64 when every one is an integer within range, else None."""
    if len(values) and not _is_int(str(values[0])):
        return None  # the cast would read every value before failing
    try:
        return pc.cast(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
