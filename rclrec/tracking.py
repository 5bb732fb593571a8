"""Experiment tracking: each epoch's losses and validation metrics mirrored to a tracker.

Off by default (``train.track = "none"``). ``--track tensorboard`` writes TensorBoard event
files under ``<run>/tensorboard`` (``tensorboard --logdir runs``); ``--track mlflow`` logs to an
MLflow tracking store: ``MLFLOW_TRACKING_URI`` when set, else a file store in ``<run>/mlflow``
(``mlflow ui --backend-store-uri <run>/mlflow``). metrics.json stays the record of a run, a
tracker only mirrors its ``history`` entries as they are appended. A tracker is any object with
``log_epoch(entry)`` and ``close()``: another backend (W&B) is one class and one line in
``TRACKERS`` (and its extra in ``EXTRAS``). Only the main process of a data-parallel run tracks.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol

from rclrec.errors import ConfigError

# Top-level history keys that are times, not losses.
TIME_KEYS = ("train_seconds", "epoch_seconds", "cpu_seconds")


class Tracker(Protocol):
    def log_epoch(self, entry: dict[str, Any]) -> None:
        """One history entry of metrics.json (``{"epoch": n, "loss": ..., "valid": {...}}``)."""

    def close(self) -> None:
        """Flush and release files."""


def epoch_scalars(entry: dict[str, Any]) -> dict[str, float]:
    """A history entry as tagged scalars: ``train/<loss>``, ``valid/<metric>``, ``time/<key>``.

    Example: ``{"epoch": 3, "loss": 9.1, "valid": {"NDCG@10": 0.04}}`` ->
    ``{"train/loss": 9.1, "valid/NDCG@10": 0.04}``.
    """
    scalars = {}
    for key, value in entry.items():
        if key == "epoch":
            continue
        if isinstance(value, dict):
            scalars.update({f"{key}/{name}": float(v) for name, v in value.items()})
        elif isinstance(value, (int, float)):
            scalars[f"{'time' if key in TIME_KEYS else 'train'}/{key}"] = float(value)
    return scalars


class NoTracker:
    """``train.track = "none"``: nothing is written."""

    def log_epoch(self, entry: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """Scalars at step = epoch in ``log_dir`` (a new event file per process; a resumed run adds
    one, and TensorBoard joins them by step)."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the `track` extra

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_epoch(self, entry: dict[str, Any]) -> None:
        for tag, value in epoch_scalars(entry).items():
            self.writer.add_scalar(tag, value, global_step=entry["epoch"])
        self.writer.flush()  # an interrupted run keeps every finished epoch

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    """One MLflow run per run folder: metrics at step = epoch, params = the run's config.json
    (``section.key``), tag ``rclrec.run_dir``. A resumed run continues its MLflow run.

    MLflow names take letters, digits and ``_ - . : / space`` only: ``valid/NDCG@10`` is logged
    as ``valid/NDCG_at_10``.
    """

    EXPERIMENT = "rclrec"  # unless MLFLOW_EXPERIMENT_NAME is set

    def __init__(self, log_dir: Path) -> None:
        from mlflow.entities import Param  # needs the `mlflow` extra
        from mlflow.tracking import MlflowClient

        run_dir = log_dir.parent.resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = log_dir.resolve().as_uri()
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless told;
            # a local folder beside the run needs no database or server.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", self.EXPERIMENT)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(name))
        earlier = [r for r in self.client.search_runs([experiment_id], max_results=50_000)
                   if r.data.tags.get("rclrec.run_dir") == str(run_dir)]
        if earlier:  # --resume: the same MLflow run, its params already logged
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name,
                                             tags={"rclrec.run_dir": str(run_dir)}).info.run_id
        params = [Param(key, str(value)) for key, value in config_params(run_dir).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log_epoch(self, entry: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(mlflow_name(tag), value, now, entry["epoch"])
            for tag, value in epoch_scalars(entry).items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def mlflow_name(tag: str) -> str:
    """A tag as an MLflow metric name: ``valid/NDCG@10`` -> ``valid/NDCG_at_10``."""
    return re.sub(r"[^\w./ :-]", "_", tag.replace("@", "_at_"))


def config_params(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config (config.json) as ``section.key`` -> value; {} without one."""
    path = run_dir / "config.json"
    if not path.exists():
        return {}
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = value

    walk("", json.loads(path.read_text()))
    return flat


TRACKERS = {"none": NoTracker, "tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}
EXTRAS = {"tensorboard": "track", "mlflow": "mlflow"}  # pip install 'rclrec[EXTRA]'


def open_tracker(name: str, run_dir: Path, enabled: bool = True) -> Tracker:
    """The tracker ``name`` (a ``train.track`` value) for the run in ``run_dir``; NoTracker when
    not ``enabled`` (the other ranks of a data-parallel run).

    Raises:
        ConfigError: its package is missing (the message says what to install).
    """
    if name == "none" or not enabled:
        return NoTracker()
    try:
        return TRACKERS[name](Path(run_dir) / name)
    except ImportError as e:
        raise ConfigError(f"train.track={name} needs the package {e.name or name}: "
                          f"pip install 'rclrec[{EXTRAS[name]}]'") from e
    except Exception as e:  # the tracker's own refusal (a bad MLFLOW_TRACKING_URI, ...)
        if not any(kind.__name__ == "MlflowException" for kind in type(e).__mro__):
            raise
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"train.track={name}: MLflow refused to start the run: "
                          f"{first_line}") from e
