"""Splits besides leave-one-out: the global temporal split, user-given split files, and
evaluation on a file of test histories. Every expected split is written out by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from rclrec.cli import main
from rclrec.config import DataConfig
from rclrec.data.dataset import DataError
from rclrec.data.logs import read_raw_log
from rclrec.data.registry import split_data
from rclrec.data.split import evaluation_cases, leave_one_out, temporal_split
from rclrec.data.synthetic import make_synthetic

# Items a, b, c, d get ids 1, 2, 3, 4 (string order).
LOG = ("user,item,timestamp\n"
       "A,a,1\nA,b,2\nA,c,5\nA,d,8\n"
       "B,b,1\nB,c,6\n"
       "C,a,7\nC,d,9\n"
       "D,c,3\nD,a,4\nD,b,9\n")
a, b, c, d = 1, 2, 3, 4


def lists(arrays) -> list[list[int]]:
    return [np.asarray(x).tolist() for x in arrays]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return read_raw_log(path, k_core=0, min_length=1)


def test_temporal_split_at_given_cutoffs(log):
    split = temporal_split(log, valid_cutoff=5, test_cutoff=8)
    # Training: everything before t=5 (C has nothing there).
    assert lists(split.train) == [[a, b], [b], [c, a]]  # A, B, D
    # Validation: first interaction in [5, 8) with a history before 5. C's a@7 has none.
    assert lists(split.valid_inputs()) == [[a, b], [b]]  # A, B
    assert split.valid_targets.tolist() == [c, c]
    # Test: first interaction at or after 8, history = all before 8.
    assert lists(split.test_inputs()) == [[a, b, c], [a], [c, a]]  # A, C, D
    assert split.test_targets.tolist() == [d, d, b]
    assert split.skipped == {"valid_users_without_history": 1, "test_users_without_history": 0}
    assert split.num_items == 4


def test_temporal_split_by_fractions(log):
    # 11 times in order: 1 1 2 3 4 5 6 7 8 9 9. Test share 0.2 -> position floor(11 * 0.8) = 8
    # -> t = 8; test + valid share 0.4 -> position floor(11 * 0.6) = 6 -> t = 6.
    split = temporal_split(log, test_fraction=0.2, valid_fraction=0.2)
    assert lists(split.train) == [[a, b, c], [b], [c, a]]  # A, B, D before t=6
    assert lists(split.valid_inputs()) == [[b]]  # B's c@6; C's a@7 has no history
    assert split.valid_targets.tolist() == [c]
    assert lists(split.test_inputs()) == [[a, b, c], [a], [c, a]]
    assert split.test_targets.tolist() == [d, d, b]


def test_temporal_split_needs_times():
    with pytest.raises(DataError, match="the temporal split needs interaction times"):
        temporal_split(make_synthetic(num_users=20))


def test_temporal_split_from_the_config_with_iso_cutoffs(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,time\n" + "".join(
        f"{u},{i},2024-01-0{t}\n" for u, i, t in
        [("A", "a", 1), ("A", "b", 2), ("A", "c", 5), ("A", "d", 8), ("B", "b", 1),
         ("B", "c", 6)]))
    data = DataConfig(dataset=str(path), split="temporal", valid_cutoff="2024-01-05",
                      test_cutoff="2024-01-08T00:00:00", k_core=0)
    _, split = split_data(data)
    assert lists(split.train) == [[a, b], [b]]
    assert split.valid_targets.tolist() == [c, c]
    assert lists(split.test_inputs()) == [[a, b, c]] and split.test_targets.tolist() == [d]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_split_files(tmp_path):
    train = write(tmp_path, "train.csv", "user,item,timestamp\n"
                                         "A,a,1\nA,b,2\nB,b,1\nB,c,2\nC,a,1\n")
    valid = write(tmp_path, "valid.csv", "user,item,timestamp\n"
                                         "A,c,3\nA,a,4\nB,z,3\nE,a,3\n")
    test = write(tmp_path, "test.csv", "user,item,timestamp\n"
                                       "A,b,9\nB,a,9\nC,z,9\nD,a,9\n")
    data = DataConfig(dataset=train, split="files", valid_file=valid, test_file=test)
    ds, split = split_data(data)
    assert ds.item_ids == ["a", "b", "c"]  # the training file's items
    assert lists(split.train) == [[1, 2], [2, 3], [1]]  # A, B, C (no k-core, no minimum)
    # Validation: A -> c after A's training items; B's target z is unknown; E has no history.
    assert lists(split.valid_inputs()) == [[1, 2]]
    assert split.valid_targets.tolist() == [3]
    # Test: A's input = training + validation items (c, a); B's unknown z is dropped from
    # the input; C's target z is unknown; D has no history.
    assert lists(split.test_inputs()) == [[1, 2, 3, 1], [2, 3]]
    assert split.test_targets.tolist() == [2, 1]
    assert split.skipped == {"valid_targets_not_in_training": 1,
                             "valid_users_without_history": 1,
                             "test_targets_not_in_training": 1,
                             "test_users_without_history": 1}


def test_split_files_of_a_leave_one_out_split_give_leave_one_out(tmp_path):
    ds = make_synthetic(num_users=40, num_items=30, seed=2)
    loo = leave_one_out(ds)
    rows = {"train": [], "valid": [], "test": []}
    for u, s in enumerate(ds.sequences):
        rows["train"] += [f"{u} {i}" for i in s[:-2]]
        rows["valid"].append(f"{u} {s[-2]}")
        rows["test"].append(f"{u} {s[-1]}")
    files = {name: write(tmp_path, f"{name}.txt", "\n".join(lines) + "\n")
             for name, lines in rows.items()}
    train, split = split_data(SimpleNamespace(
        **{**DataConfig().__dict__, "dataset": files["train"], "split": "files",
           "valid_file": files["valid"], "test_file": files["test"]}))
    # Pairs files remap item ids to the training file's own 1..M: compare by original id.
    original = np.array([0] + [int(x) for x in train.item_ids])
    assert lists(original[s] for s in split.train) == lists(loo.train)
    assert lists(original[s] for s in split.test_inputs()) == lists(loo.test_inputs())
    assert original[split.valid_targets].tolist() == loo.valid_targets.tolist()
    assert original[split.test_targets].tolist() == loo.test_targets.tolist()


def test_split_config_is_checked():
    with pytest.raises(ValueError, match="data.split=files needs data.valid_file"):
        DataConfig(split="files")
    with pytest.raises(ValueError, match="data.split='random' is not one of"):
        DataConfig(split="random")


def test_evaluation_cases_of_a_history_file(tmp_path):
    path = write(tmp_path, "cases.csv", "user,item,timestamp\n"
                                        "u,x,1\nu,q,2\nu,y,3\n"  # q unknown: dropped
                                        "v,x,1\nv,q,2\n"  # target q unknown: left out
                                        "w,q,1\nw,x,2\n")  # q dropped: no history left
    cases = read_raw_log(path, k_core=0, min_length=2)
    inputs, targets, skipped = evaluation_cases(cases, ["y", "x"])
    assert lists(inputs) == [[2]] and targets.tolist() == [1]
    assert skipped == {"targets_unknown_to_the_model": 1, "cases_without_known_history": 1,
                       "unknown_history_items_dropped": 2}


def test_evaluate_on_a_file_of_the_test_histories_equals_the_run_test(tmp_path, capsys):
    ds = make_synthetic(num_users=60, num_items=40, seed=4)
    data = write(tmp_path, "train.txt", "".join(
        f"{u} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(ds.sequences)))
    out = tmp_path / "run"
    assert main(["train", "--dataset", data, "--epochs", "1", "--max-steps", "2",
                 "--set", "encoder.hidden_dim=16", "--set", "train.threads=1",
                 "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    # Each full sequence is a test case of leave-one-out: history = all but the last item.
    assert main(["evaluate", "--run", str(out), "--input", data, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["cases"] == 60
    for key, value in metrics["test"].items():
        assert result["test"][key] == pytest.approx(value, abs=1e-9), key
    assert main(["evaluate", "--run", str(out), "--input", data]) == 0
    assert "60 cases from" in capsys.readouterr().out


def test_a_directory_as_input_is_an_error_line(tmp_path, capsys):
    folder = tmp_path / "histories"
    folder.mkdir()
    for command in (["evaluate", "--run", str(tmp_path), "--input", str(folder)],
                    ["recommend", "--run", str(tmp_path), "--input", str(folder)],
                    ["train", "--dataset", str(folder), "--out", str(tmp_path / "r"),
                     "--quiet"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"rclrec {command[0]}: error: {folder}: is a directory"), err


@pytest.mark.parametrize("method", ["sasrec", "rcl"])
def test_train_and_evaluate_on_a_temporal_split(tmp_path, capsys, method):
    ds = make_synthetic(num_users=80, num_items=30, seed=1)
    rows = [f"u{u},i{item},{1000 * u + 10 * t}" for u, s in enumerate(ds.sequences)
            for t, item in enumerate(s)]
    data = write(tmp_path, "log.csv", "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--dataset", data, "--method", method, "--epochs", "1",
                 "--max-steps", "2", "--set", "data.split=temporal", "--set", "data.k_core=0",
                 "--set", "encoder.hidden_dim=16", "--set", "train.threads=1",
                 "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["NDCG@10"] <= 1.0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["test"]["NDCG@10"] == pytest.approx(metrics["test"]["NDCG@10"], abs=1e-9)
