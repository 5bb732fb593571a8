"""Experiment tracking: each epoch's losses and validation metrics mirrored to a tracker.

Off by default (``train.track = "none"``). ``--track tensorboard`` writes TensorBoard event
files under ``<run>/tensorboard`` (``tensorboard --logdir runs``); metrics.json stays the record
of a run, a tracker only mirrors its ``history`` entries as they are appended. A tracker is any
object with ``log_epoch(entry)`` and ``close()``: another backend (MLflow, W&B) is one class and
one line in ``TRACKERS``. Only the main process of a data-parallel run tracks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from rclrec.config import ConfigError

# Top-level history keys that are times, not losses.
TIME_KEYS = ("train_seconds", "epoch_seconds")


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


TRACKERS = {"none": NoTracker, "tensorboard": TensorBoardTracker}


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
                          f"pip install 'rclrec[track]'") from e
