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

import os
import re
from pathlib import Path

from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.io import read_atomic_inter, read_pairs_file, read_raw_log, read_sequence_file
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
        if direct.is_absolute():
            raise DataError(f"{direct}: no such file (known dataset names: "
                            f"{', '.join(_known_names())})")
        file_name = name_or_path
    searched = []
    for directory in search_dirs(data_dir):
        for name in (file_name, *ALTERNATIVE_FILES.get(key, ())):
            candidate = directory / name
            searched.append(str(candidate))
            if candidate.is_file():
                return candidate, detect_format(candidate)
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


def load_dataset(name_or_path: str, data_dir: str | os.PathLike | None = None,
                 **reader_options) -> SequenceDataset:
    """Load a data set by name or path (see :func:`resolve_dataset`).

    Args:
        name_or_path: a known name, ``synthetic[-<seed>]`` or a file path.
        data_dir: searched first for names.
        **reader_options: passed to :func:`read_raw_log` (user_col, item_col, time_col, sep,
            has_header, k_core, drop_repeats) for raw logs; ignored by the other formats, whose
            layout is fixed, so a config can always pass them.

    Returns:
        The data set; for a known name, ``name`` is the lower-case name.
    """
    path, fmt = resolve_dataset(name_or_path, data_dir)
    key = name_or_path.strip().lower()
    if fmt == SYNTHETIC:
        seed = _SYNTHETIC_NAME.fullmatch(key).group(1)
        return make_synthetic(seed=int(seed or 0))
    if fmt == "raw":
        ds = read_raw_log(path, **reader_options)
    elif fmt == "atomic":
        ds = read_atomic_inter(path)
    elif fmt == "sequence":
        ds = read_sequence_file(path)
    else:
        ds = read_pairs_file(path)
    if key in DATASET_FILES:
        ds.name = key
    return ds


def default_max_len(name: str) -> int:
    """Input length used by the paper: 200 for MovieLens (``ml-*``), 50 for the others."""
    parts = Path(name.strip().lower()).parts
    return 200 if any(part.startswith("ml-") for part in parts) else 50
