"""Data sets by name or path: where they are looked up and which reader opens them.

Known names (case-insensitive) and their files:

==========  ==========================  =========================================
name        file                        format
==========  ==========================  =========================================
beauty      Beauty.txt                  one line per user (S3-Rec)
sports      Sports_and_Outdoors.txt     one line per user
toys        Toys_and_Games.txt          one line per user
yelp        Yelp.txt                    one line per user
lastfm      LastFM.txt                  one line per user
ml-100k     ml-100k/u.data              raw log, 5-core (943 / 1,349 / 99,287)
ml-1m       ml-1m.txt or                ``user item`` pairs (SASRec), or GroupLens'
            ml-1m/ratings.dat           raw ``user::item::rating::time`` log, 5-core;
                                        add either by hand
synthetic   (generated)                 Markov chain, ``synthetic-<seed>`` for a seed
==========  ==========================  =========================================

A name is looked up in: the ``data_dir`` argument, ``$RCLREC_DATA``, ``./data``,
``./../shared/data`` and ``<repository>/../shared/data``, in that order.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.io import read_pairs_file, read_sequence_file
from rclrec.data.logs import read_atomic_inter, read_raw_log, time_or_nan
from rclrec.data.split import (
    MIN_LENGTH,
    HeldOutSplit,
    LeaveOneOutSplit,
    files_split,
    leave_one_out,
    temporal_split,
)
from rclrec.data.synthetic import make_synthetic

DATASET_FILES = {
    "beauty": "Beauty.txt",
    "sports": "Sports_and_Outdoors.txt",
    "toys": "Toys_and_Games.txt",
    "yelp": "Yelp.txt",
    "lastfm": "LastFM.txt",
    "ml-100k": "ml-100k/u.data",
    "ml-1m": "ml-1m.txt",
}
# Further files a name is found as, tried after its DATASET_FILES entry in each directory.
ALTERNATIVE_FILES = {"ml-1m": ("ml-1m/ratings.dat",)}
SYNTHETIC = "synthetic"
_SYNTHETIC_NAME = re.compile(r"synthetic(?:-(\d+))?")

# The repository root is the parent of the rclrec package directory.
_REPO_ROOT = Path(__file__).resolve().parents[2]

_RAW_LOG_EXTENSIONS = (".csv", ".tsv", ".parquet", ".data", ".dat")


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for a dataset name, in order (duplicates removed)."""
    candidates = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    if os.environ.get("RCLREC_DATA"):
        candidates.append(Path(os.environ["RCLREC_DATA"]))
    candidates += [Path("data"), Path("..") / "shared" / "data",
                   _REPO_ROOT.parent / "shared" / "data"]
    unique: list[Path] = []
    for path in candidates:
        if all(path.resolve() != seen.resolve() for seen in unique):
            unique.append(path)
    return unique


def resolve_dataset(name_or_path: str, data_dir: str | os.PathLike | None = None
                    ) -> tuple[Path, str]:
    """Find a dataset and its format.

    Args:
        name_or_path: a known name (see the module docstring), ``synthetic[-<seed>]``, a file
            path, or a file name to look up in the data directories.
        data_dir: searched first for names.

    Returns:
        (path, format) with format one of ``sequence``, ``pairs``, ``raw``, ``atomic``,
        ``synthetic``. For synthetic names the path is just ``Path(name)``.

    Raises:
        DataError: the data set is not found (the message lists every place searched and the
            known names), or a file has an unknown extension.
    """
    key = name_or_path.strip().lower()
    if _SYNTHETIC_NAME.fullmatch(key):
        return Path(key), SYNTHETIC
    file_name = DATASET_FILES.get(key)
    if file_name is None:
        direct = Path(name_or_path).expanduser()
        if direct.is_file():
            return direct, detect_format(direct)
        if direct.is_dir():
            raise DataError(f"{direct}: is a directory; give the data file inside it (a "
                            f"sequence, pairs, .inter or raw log file)")
        if direct.is_absolute():
            raise DataError(f"{direct}: no such file (known dataset names: "
                            f"{', '.join(_known_names())})")
        file_name = name_or_path
    searched: list[str] = []
    folders: list[Path] = []
    for directory in search_dirs(data_dir):
        for name in (file_name, *ALTERNATIVE_FILES.get(key, ())):
            candidate = directory / name
            searched.append(str(candidate))
            if candidate.is_file():
                return candidate, detect_format(candidate)
            if candidate.is_dir():
                folders.append(candidate)
    if folders:  # found, but as a folder: say so rather than "not found"
        raise DataError(f"{folders[0]}: is a directory; give the data file inside it")
    raise DataError(f"dataset {name_or_path!r} not found; searched: {'; '.join(searched)}. "
                    f"Known names: {', '.join(_known_names())}. Pass a file path, "
                    f"--set data.data_dir=DIR, or set $RCLREC_DATA")


def _known_names() -> list[str]:
    return [*DATASET_FILES, SYNTHETIC, f"{SYNTHETIC}-<seed>"]


def detect_format(path: Path) -> str:
    """Format of a file from its extension, and for ``.txt`` from its content.

    ``.inter`` is a RecBole atomic file; ``.csv``, ``.tsv``, ``.parquet``, ``.data`` and ``.dat``
    (MovieLens' ``::``) are raw logs; a ``.txt`` file is one line per user if any line has more
    than 2 fields, else pairs.
    """
    suffix = path.suffix.lower()
    if suffix == ".inter":
        return "atomic"
    if suffix in _RAW_LOG_EXTENSIONS:
        return "raw"
    if suffix == ".txt":
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return "sequence" if any(len(line.split()) > 2 for line in f) else "pairs"
    raw_logs = ", ".join(_RAW_LOG_EXTENSIONS)
    raise DataError(f"{path}: unknown file type {suffix or '(no extension)'!r}; expected .txt "
                    f"(sequences or pairs), .inter, or a raw log ({raw_logs})")


def load_dataset(name_or_path: str, data_dir: str | os.PathLike | None = None, *,
                 min_length: int = MIN_LENGTH, **reader_options) -> SequenceDataset:
    """Load a data set by name or path (see :func:`resolve_dataset`).

    Args:
        name_or_path: a known name, ``synthetic[-<seed>]`` or a file path.
        data_dir: searched first for names.
        min_length: users with fewer interactions are skipped (3 for leave-one-out).
        **reader_options: passed to :func:`read_raw_log` (user_col, item_col, time_col, sep,
            has_header, k_core, drop_repeats, bad_times) for raw logs; ignored by the other
            formats, whose layout is fixed, so a config can always pass them.

    Returns:
        The data set; for a known name, ``name`` is the lower-case name.
    """
    path, fmt = resolve_dataset(name_or_path, data_dir)
    key = name_or_path.strip().lower()
    if fmt == SYNTHETIC:
        seed = _SYNTHETIC_NAME.fullmatch(key).group(1)
        return make_synthetic(seed=int(seed or 0))
    if fmt == "raw":
        ds = read_raw_log(path, min_length=min_length, **reader_options)
    elif fmt == "atomic":
        ds = read_atomic_inter(path, min_length=min_length)
    elif fmt == "sequence":
        ds = read_sequence_file(path, min_length=min_length)
    else:
        ds = read_pairs_file(path, min_length=min_length)
    if key in DATASET_FILES:
        ds.name = key
    return ds


def reader_options(data) -> dict[str, Any]:
    """The raw-log options of a data config (rclrec.config.DataConfig)."""
    return {"user_col": data.user_col, "item_col": data.item_col,
            "time_col": None if data.time_col.lower() == "none" else data.time_col,
            "k_core": data.k_core, "drop_repeats": data.drop_repeats,
            "bad_times": data.bad_times}


def load_training_data(data) -> SequenceDataset:
    """The data set that a data config trains on (``data.dataset``, read as its split needs).

    Leave-one-out skips users shorter than 3; the other splits keep every user, and ``files``
    also skips k-core filtering (the given split is kept as it is).
    """
    options = reader_options(data)
    if data.split == "files":
        options["k_core"] = 0
    min_length = MIN_LENGTH if data.split == "leave_one_out" else 1
    return load_dataset(data.dataset, data.data_dir, min_length=min_length, **options)


def split_dataset(data, ds: SequenceDataset) -> LeaveOneOutSplit | HeldOutSplit:
    """The split that a data config asks for (``data.split``) of its training data ``ds``.

    ``files`` takes the validation and test cases from ``data.valid_file`` and
    ``data.test_file``, read with the same column options, no k-core filter and no minimum.
    """
    if data.split == "files":
        options = {**reader_options(data), "k_core": 0}
        valid, test = (load_dataset(name, data.data_dir, min_length=1, **options)
                       for name in (data.valid_file, data.test_file))
        return files_split(ds, valid, test)
    if data.split == "temporal":
        cutoffs = {key: _time_setting(f"data.{key}", getattr(data, key))
                   for key in ("test_cutoff", "valid_cutoff")}
        return temporal_split(ds, **cutoffs, test_fraction=data.test_fraction,
                              valid_fraction=data.valid_fraction)
    return leave_one_out(ds)


def split_data(data) -> tuple[SequenceDataset, LeaveOneOutSplit | HeldOutSplit]:
    """The training data and its split (see :func:`load_training_data`, :func:`split_dataset`).
    """
    ds = load_training_data(data)
    return ds, split_dataset(data, ds)


def _time_setting(key: str, text: str | None) -> float | None:
    if text is None:
        return None
    seconds = time_or_nan(str(text))
    if not math.isfinite(seconds):
        raise DataError(f"{key}={text!r} is neither a number nor an ISO 8601 time")
    return seconds


def default_max_len(name: str) -> int:
    """Input length used by the paper: 200 for MovieLens (``ml-*``), 50 for the others."""
    parts = Path(name.strip().lower()).parts
    return 200 if any(part.startswith("ml-") for part in parts) else 50
