"""Experiment tracking: a smoke run's TensorBoard scalars and MLflow metrics equal
metrics.json's history."""

import json

import pytest

from rclrec import tracking
from rclrec.cli import main
from rclrec.config import ConfigError, load_config
from rclrec.grid.cells import config_hash

SMOKE = ["--dataset", "synthetic", "--method", "rcl", "--epochs", "3", "--max-steps", "2",
         "--set", "encoder.hidden_dim=16", "--set", "encoder.inner_dim=32",
         "--set", "train.threads=1", "--quiet"]


@pytest.fixture
def tensorboard():
    return pytest.importorskip("tensorboard", reason="the track extra is not installed: "
                                                     "pip install 'rclrec[track]'")


def read_scalars(log_dir) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every scalar in the event files under ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)}
            for tag in events.Tags()["scalars"]}


def expected_history(history: list[dict]) -> dict[str, dict[int, float]]:
    """{tag: {epoch: value}} of the valid metrics and the losses and times of metrics.json."""
    want: dict[str, dict[int, float]] = {}
    for entry in history:
        for name, value in entry["valid"].items():
            want.setdefault(f"valid/{name}", {})[entry["epoch"]] = value
        for key in ("loss", "rec", "train_seconds", "epoch_seconds", "cpu_seconds"):
            tag = f"{'time' if 'seconds' in key else 'train'}/{key}"
            want.setdefault(tag, {})[entry["epoch"]] = entry[key]
    return want


def test_smoke_run_writes_the_history_of_metrics_json_to_tensorboard(tmp_path, tensorboard):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--track", "tensorboard", "--out", str(out)]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    scalars = read_scalars(out / "tensorboard")

    want = expected_history(history)
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


def test_a_resumed_run_may_turn_tracking_on(tmp_path, tensorboard):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--epochs", "1", "--out", str(out)]) == 0
    (out / "metrics.json").unlink()  # as if stopped after epoch 1
    assert main(["train", *SMOKE, "--epochs", "2", "--track", "tensorboard", "--resume",
                 "--out", str(out)]) == 0
    assert list(read_scalars(out / "tensorboard")["valid/NDCG@10"]) == [2]


def test_bad_settings_are_one_line_errors(tmp_path, capsys, monkeypatch):
    with pytest.raises(ConfigError, match="train.track='wandb' is not one of none, "
                                          "tensorboard, mlflow"):
        load_config(None, {"train.track": "wandb"})

    for name, package, extra in [("tensorboard", "tensorboard", "track"),
                                 ("mlflow", "mlflow", "mlflow")]:
        def missing(log_dir, package=package):
            raise ModuleNotFoundError(f"No module named {package!r}", name=package)

        monkeypatch.setitem(tracking.TRACKERS, name, missing)
        assert main(["train", *SMOKE, "--track", name, "--out", str(tmp_path / name)]) == 2
        assert capsys.readouterr().err == (f"rclrec train: error: train.track={name} needs the "
                                           f"package {package}: pip install 'rclrec[{extra}]'\n")


def mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rclrec")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def mlflow_metrics(uri: str, run) -> dict[str, dict[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return {key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            for key in run.data.metrics}


@pytest.fixture
def mlflow_env(monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: "
                                         "pip install 'rclrec[mlflow]'")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    return monkeypatch


def test_smoke_run_writes_the_history_and_config_of_the_run_to_mlflow(tmp_path, mlflow_env):
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--track", "mlflow", "--out", str(out)]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    uri = (out / "mlflow").as_uri()  # the default store: a folder in the run
    [run] = mlflow_runs(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"

    got = mlflow_metrics(uri, run)
    want = {tracking.mlflow_name(tag): by_epoch
            for tag, by_epoch in expected_history(history).items()}
    assert "valid/NDCG_at_10" in want and "train/loss" in want
    assert set(want) <= set(got)
    assert any(key.startswith("train/") and key not in want for key in got)  # RCL's own
    for key, by_epoch in want.items():
        assert got[key] == pytest.approx(by_epoch, rel=1e-12), key

    config = json.loads((out / "config.json").read_text())
    params = run.data.params
    assert params["method"] == "rcl" and params["encoder.hidden_dim"] == "16"
    assert params["train.track"] == "mlflow" and params["data.dataset"] == "synthetic"
    assert len(params) == sum(len(v) if isinstance(v, dict) else 1 for v in config.values())


def test_mlflow_tracking_uri_is_used_and_a_resumed_run_continues_its_mlflow_run(
        tmp_path, mlflow_env):
    store = (tmp_path / "store").as_uri()
    mlflow_env.setenv("MLFLOW_TRACKING_URI", store)
    mlflow_env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks this of a file URI
    out = tmp_path / "run"
    assert main(["train", *SMOKE, "--epochs", "1", "--track", "mlflow", "--out", str(out)]) == 0
    (out / "metrics.json").unlink()  # as if stopped after epoch 1
    assert main(["train", *SMOKE, "--epochs", "2", "--track", "mlflow", "--resume",
                 "--out", str(out)]) == 0
    assert not (out / "mlflow").exists()
    [run] = mlflow_runs(store)
    assert list(mlflow_metrics(store, run)["valid/NDCG_at_10"]) == [1, 2]


def test_a_store_mlflow_refuses_is_a_one_line_error(tmp_path, capsys, mlflow_env):
    mlflow_env.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://host/x")
    assert main(["train", *SMOKE, "--track", "mlflow", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rclrec train: error: train.track=mlflow: MLflow refused to start "
                          "the run: ") and err.count("\n") == 1, err
