"""Dataset names, search order, format detection and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rclrec.data import registry
from rclrec.data.dataset import DataError
from rclrec.data.registry import default_max_len, load_dataset, resolve_dataset

SEQUENCES = "1 1 2 3\n2 2 3 1 4\n3 4 3 2\n"
SHARED_ML_100K = Path(registry.__file__).resolve().parents[2].parent / "shared/data/ml-100k/u.data"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Run from an empty directory, with no $RCLREC_DATA and no repository-level data."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("RCLREC_DATA", raising=False)
    monkeypatch.setattr(registry, "_REPO_ROOT", tmp_path / "repo" / "root")
    return tmp_path


def put(directory: Path, name: str, text: str = SEQUENCES) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_name_is_case_insensitive_and_found_in_data_dir(isolated):
    path = put(isolated / "mine", "Beauty.txt")
    assert resolve_dataset("BEAUTY", data_dir=isolated / "mine") == (path, "sequence")
    ds = load_dataset("Beauty", data_dir=str(isolated / "mine"))
    assert ds.name == "beauty"
    assert ds.num_users == 3


def test_search_order(isolated, monkeypatch):
    env_dir, local, shared_cwd = isolated / "env", isolated / "cwd/data", isolated / "shared/data"
    repo_shared = isolated / "repo/shared/data"
    for directory in (env_dir, local, shared_cwd, repo_shared):
        put(directory, "Toys_and_Games.txt")
    monkeypatch.setenv("RCLREC_DATA", str(env_dir))
    explicit = put(isolated / "explicit", "Toys_and_Games.txt")

    def found(**kwargs) -> Path:
        return resolve_dataset("toys", **kwargs)[0].resolve()

    assert found(data_dir=explicit.parent) == explicit.resolve()
    assert found() == (env_dir / "Toys_and_Games.txt").resolve()
    monkeypatch.delenv("RCLREC_DATA")
    assert found() == (local / "Toys_and_Games.txt").resolve()
    (local / "Toys_and_Games.txt").unlink()
    assert found() == (shared_cwd / "Toys_and_Games.txt").resolve()
    (shared_cwd / "Toys_and_Games.txt").unlink()
    assert found() == (repo_shared / "Toys_and_Games.txt").resolve()


def test_missing_name_lists_places_and_names(isolated, monkeypatch):
    monkeypatch.setenv("RCLREC_DATA", str(isolated / "env"))
    with pytest.raises(DataError) as err:
        load_dataset("ml-1m", data_dir=isolated / "given")
    message = str(err.value)
    for place in ("given/ml-1m.txt", "env/ml-1m.txt", "data/ml-1m.txt",
                  "../shared/data/ml-1m.txt", "repo/shared/data/ml-1m.txt"):
        assert place in message
    assert "beauty" in message and "synthetic" in message


def test_unknown_name_fails(isolated):
    with pytest.raises(DataError, match="'nosuch' not found.*Known names: beauty"):
        resolve_dataset("nosuch")


def test_missing_absolute_path(isolated):
    path = isolated / "gone.txt"
    with pytest.raises(DataError, match=rf"{path}: no such file"):
        load_dataset(str(path))


def test_file_formats_by_extension_and_content(isolated):
    assert resolve_dataset(str(put(isolated, "a.txt")))[1] == "sequence"
    assert resolve_dataset(str(put(isolated, "b.txt", "1 1\n1 2\n")))[1] == "pairs"
    assert resolve_dataset(str(put(isolated, "c.inter", "user_id:token\n")))[1] == "atomic"
    for name in ("d.csv", "e.tsv", "f.parquet", "u.data"):
        assert resolve_dataset(str(put(isolated, name, "")))[1] == "raw"
    with pytest.raises(DataError, match=r"unknown file type '\.json'"):
        resolve_dataset(str(put(isolated, "g.json", "{}")))


def test_file_name_is_looked_up_in_data_dirs(isolated):
    path = put(isolated / "cwd/data", "mine.txt", "1 5\n1 6\n1 7\n")
    found, fmt = resolve_dataset("mine.txt")
    assert (found.resolve(), fmt) == (path.resolve(), "pairs")


def test_reader_options_reach_raw_logs_and_are_ignored_elsewhere(isolated):
    log = put(isolated, "log.csv", "u,i,t\n1,a,3\n1,b,2\n1,c,1\n")
    ds = load_dataset(str(log), user_col="u", item_col="i", time_col="t", k_core=0)
    assert [ds.item_ids[i - 1] for i in ds.sequences[0]] == ["c", "b", "a"]
    seq = load_dataset(str(put(isolated, "s.txt")), user_col="u", k_core=10)
    assert seq.num_users == 3


def test_synthetic_names():
    a = load_dataset("synthetic")
    b = load_dataset("Synthetic-0", k_core=5)  # reader options do not apply
    c = load_dataset("synthetic-7")
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    assert c.name == "synthetic-7"
    assert resolve_dataset("synthetic-3")[1] == "synthetic"


def test_default_max_len():
    assert default_max_len("ml-1m") == 200
    assert default_max_len("ML-100k") == 200
    assert default_max_len("../shared/data/ml-100k/u.data") == 200
    assert default_max_len("beauty") == 50
    assert default_max_len("synthetic") == 50


@pytest.mark.skipif(not SHARED_ML_100K.is_file(), reason=f"{SHARED_ML_100K} is not present")
def test_ml_100k_five_core_matches_the_published_counts():
    ds = load_dataset("ml-100k")
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (943, 1349, 99287)
    assert ds.name == "ml-100k"
    assert ds.item_ids == sorted(ds.item_ids, key=int)
    assert all(np.all(s >= 1) for s in ds.sequences)


def test_a_directory_is_named_as_a_directory(isolated):
    # Today: "no such file" / "not found", though the folder is there.
    folder = isolated / "logs"
    folder.mkdir()
    with pytest.raises(DataError, match=rf"{folder}: is a directory; give the data file"):
        load_dataset(str(folder))
    (isolated / "cwd/data/mine").mkdir(parents=True)
    with pytest.raises(DataError, match=r"data/mine: is a directory"):
        load_dataset("mine")
