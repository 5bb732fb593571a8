"""Experiment tracking: a smoke run's TensorBoard scalars equal metrics.json's history."""

import json

import pytest

from rclrec import tracking
from rclrec.cli import main
from rclrec.config import ConfigError, load_config
from rclrec.grid.cells import config_hash

pytest.importorskip("tensorboard", reason="the track extra is not installed: "
                                          "pip install 'rclrec[track]'")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

SMOKE = ["--dataset", "synthetic", "--method", "rcl", "--epochs", "3", "--max-steps", "2",
         "--set", "encoder.hidden_dim=16", "--set", "encoder.inner_dim=32",
         "--set", "train.threads=1", "--quiet"]


def read_scalars(log_dir) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every scalar in the event files under ``log_dir``."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)}
            for tag in events.Tags()["scalars"]}


def test_smoke_run_writes_the_history_of_metrics_json_to_tensorboard(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--track", "tensorboard", "--out", str(out)]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    scalars = read_scalars(out / "tensorboard")

    want: dict[str, dict[int, float]] = {}
    for entry in history:
        for name, value in entry["valid"].items():
            want.setdefault(f"valid/{name}", {})[entry["epoch"]] = value
        for key in ("loss", "rec", "train_seconds", "epoch_seconds"):
            tag = f"{'time' if 'seconds' in key else 'train'}/{key}"
            want.setdefault(tag, {})[entry["epoch"]] = entry[key]
    assert len(history) == 3 and "valid/NDCG@10" in want and "train/loss" in want
    assert set(want) <= set(scalars)
    assert any(tag.startswith("train/") and tag not in want for tag in scalars)  # RCL's own
    for tag, by_epoch in scalars.items():
        assert list(by_epoch) == [1, 2, 3], tag
    for tag, by_epoch in want.items():  # TensorBoard stores float32
        assert scalars[tag] == pytest.approx(by_epoch, rel=1e-6, abs=1e-9), tag


def test_tracking_is_off_by_default_and_outside_the_cell_hash(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--epochs", "1", "--out", str(out)]) == 0
    assert not (out / "tensorboard").exists()
    assert json.loads((out / "config.json").read_text())["train"]["track"] == "none"
    base = {"data.dataset": "synthetic"}
    assert config_hash(load_config(None, base)) == config_hash(
        load_config(None, {**base, "train.track": "tensorboard"}))


def test_a_resumed_run_may_turn_tracking_on(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--epochs", "1", "--out", str(out)]) == 0
    (out / "metrics.json").unlink()  # as if stopped after epoch 1
    assert main(["train", *SMOKE, "--epochs", "2", "--track", "tensorboard", "--resume",
                 "--out", str(out)]) == 0
    assert list(read_scalars(out / "tensorboard")["valid/NDCG@10"]) == [2]


def test_bad_settings_are_one_line_errors(tmp_path, capsys, monkeypatch):
    with pytest.raises(ConfigError, match="train.track='mlflow' is not one of none, tensorboard"):
        load_config(None, {"train.track": "mlflow"})

    def missing(log_dir):
        raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")

    monkeypatch.setitem(tracking.TRACKERS, "tensorboard", missing)
    assert main(["train", *SMOKE, "--track", "tensorboard", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ("rclrec train: error: train.track=tensorboard needs the "
                                       "package tensorboard: pip install 'rclrec[track]'\n")
