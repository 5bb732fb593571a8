"""A run as a recipe: config -> data -> encoder and method -> fit -> evaluate -> files."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rclrec.config import ConfigError, ExperimentConfig, config_from_dict
from rclrec.data.batches import TrainingInstances, prefix_instances, window_instances
from rclrec.data.dataset import SequenceDataset
from rclrec.data.registry import (
    default_max_len,
    load_training_data,
    split_data,
)
from rclrec.data.split import HeldOutSplit, LeaveOneOutSplit
from rclrec.errors import InputError
from rclrec.eval.ranking import NonFiniteScores
from rclrec.files import CorruptFile, read_json, write_json_atomic
from rclrec.locks import exclusive_lock
from rclrec.methods import method_class
from rclrec.model_file import write_model_file
from rclrec.models import ENCODERS, build_encoder
from rclrec.provenance import CODE_COMMIT, device_label, peak_rss_mb
from rclrec.train.distributed import close_world, init_world
from rclrec.train.trainer import Trainer, TrainingError

LOCK_FILE = "run.lock"  # held while a process trains the folder (rclrec/locks.py)


class RunDiverged(InputError):
    """A run's loss, weights or scores became NaN or infinite: it has no results to give
    (a ValueError: the settings, e.g. train.lr, are the cause, not rclrec's code)."""


def diverged(run_dir: str | os.PathLike, error: Exception) -> RunDiverged:
    return RunDiverged(f"run {run_dir} diverged: {error}")


Split = LeaveOneOutSplit | HeldOutSplit  # the trainer and the methods take either


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the settings that depend on others: max_len by dataset, instances by encoder, then
    the method's own section as the method resolves it (rclrec/methods/base.py)."""
    if cfg.encoder.name not in ENCODERS:
        raise ConfigError(f"unknown encoder {cfg.encoder.name!r} (option --encoder); choose one "
                          f"of {', '.join(sorted(ENCODERS))}")
    method = method_class(cfg.method)  # fails early on an unknown method
    max_len = cfg.data.max_len or default_max_len(cfg.data.dataset)
    causal = getattr(ENCODERS[cfg.encoder.name], "causal", False)
    instances = cfg.train.instances
    if instances == "auto":
        instances = "windows" if causal else "prefixes"
    if instances == "windows" and not causal:
        raise ConfigError(f"train.instances=windows needs a causal encoder; "
                          f"{cfg.encoder.name} sees the future (use prefixes)")
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, max_len=max_len),
        encoder=dataclasses.replace(cfg.encoder, max_len=max_len),
        train=dataclasses.replace(cfg.train, instances=instances),
    )
    if not method.section:
        return cfg
    return cfg.with_section(method.section,
                            method.resolve_settings(cfg.sections[method.section], cfg))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device


def load_data(cfg: ExperimentConfig) -> SequenceDataset:
    """The training data set (for data.split=files: the training file)."""
    return load_training_data(cfg.data)


def load_split(cfg: ExperimentConfig) -> tuple[SequenceDataset, Split]:
    """The training data and its split (data.split: leave_one_out, temporal or files)."""
    return split_data(cfg.data)


def build_instances(cfg: ExperimentConfig, split: Split) -> TrainingInstances:
    build = window_instances if cfg.train.instances == "windows" else prefix_instances
    return build(split.train, cfg.encoder.max_len)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def run_training(cfg: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
                 show_progress: bool = True) -> dict[str, Any]:
    """Train, select by validation, test at the best epoch; write metrics.json and model.pt.

    With ``resume``, a finished run is returned as it is (if trained with the same settings)
    and an interrupted one continues from its last checkpoint; without it an existing run
    folder is an error (no silent overwrite). One process at a time trains a folder: it holds
    ``run.lock`` until its files are written.
    Under ``torchrun`` the processes train one model data-parallel (rclrec/train/distributed.py);
    rank 0 owns the run folder and every rank returns its metrics.

    Raises:
        LockBusy: another process is training in ``out_dir``.
        RunDiverged: the loss, the weights or the scores became NaN or infinite (no
            metrics.json or model.pt is written).
    """
    out_dir = Path(out_dir)
    cfg = resolve(cfg)
    world, device_name = init_world(cfg.train.device)
    if world.size > 1 and not method_class(cfg.method).data_parallel:
        raise ConfigError(f"--method {cfg.method} cannot train data-parallel: it takes "
                          f"optimizer steps of its own on each rank")
    early: Any = None  # rank 0 decides for all: a finished run's metrics or an error
    lock = contextlib.ExitStack()  # rank 0 holds the folder's lock until the files are written
    if world.main:
        try:
            lock.enter_context(exclusive_lock(out_dir / LOCK_FILE, f"run folder {out_dir}"))
            early = _prepare_run_dir(out_dir, cfg, resume)
        except (InputError, OSError) as e:  # the other ranks wait for rank 0: they get it too
            early = e
    early = world.share(early)
    if early is not None:
        lock.close()
        close_world()
        if isinstance(early, Exception):
            raise early
        return early
    with lock:
        try:
            return _train_run(cfg, out_dir, world, device_name, resume, show_progress)
        except (TrainingError, NonFiniteScores) as e:
            raise diverged(out_dir, e) from e


def _train_run(cfg: ExperimentConfig, out_dir: Path, world, device_name: str, resume: bool,
               show_progress: bool) -> dict[str, Any]:
    """run_training's work once the run folder is checked and locked."""
    commit = CODE_COMMIT

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    device = pick_device(device_name)
    dataset, split = load_split(cfg)
    instances = build_instances(cfg, split)
    method = method_class(cfg.method)(cfg, split, instances, device, dataset.item_ids)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens).to(device)
    trainer = Trainer(cfg, split, instances, encoder, method, device, out_dir, show_progress,
                      world)
    if resume and trainer.resume() and show_progress and world.main:
        print(f"resumed {out_dir} after epoch {trainer.state.epoch}", file=sys.stderr)
    state = trainer.fit()
    if not world.main:
        metrics = world.share(None)  # rank 0 tests, writes the files and sends the metrics
        close_world()
        if isinstance(metrics, Exception):
            raise metrics
        return metrics

    try:
        valid, test = trainer.validate(), trainer.test()
    except NonFiniteScores as e:
        world.share(e)  # the other ranks wait for the metrics: they get the error instead
        close_world()
        raise
    epochs = max(state.epoch, 1)
    metrics = {
        "method": cfg.method,
        "encoder": cfg.encoder.name,
        "dataset": cfg.data.dataset,
        "seed": cfg.train.seed,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "train_seconds": round(state.train_seconds, 3),
        # Only when every epoch was timed (a checkpoint from before the field was added lacks it).
        "cpu_seconds": round(state.cpu_seconds, 3)
        if all("cpu_seconds" in h for h in state.history) else None,
        "seconds_per_epoch": round(sum(h["train_seconds"] for h in state.history) / epochs, 3)
        if state.history else None,
        "seconds_to_best": round(state.seconds_to_best, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "device": device_label(device),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch "
                   f"{torch.__version__}",
        "ranks": world.size,  # data-parallel processes (each trained batch_size per step)
        "data": {"users": dataset.num_users, "items": dataset.num_items,
                 "interactions": dataset.num_interactions, "training_instances": len(instances)},
        "valid": valid,
        "test": test,
        "config": cfg.to_dict(),
        "git_commit": commit,
        "history": state.history,
    }
    write_model_file(out_dir, cfg, encoder, method.extra_tokens, dataset.item_ids)
    write_json_atomic(out_dir / "metrics.json", metrics)
    metrics = world.share(metrics)
    close_world()
    return metrics


def _prepare_run_dir(out_dir: Path, cfg: ExperimentConfig, resume: bool) -> dict | None:
    """Check the run folder and write config.json; a finished run's metrics, else None."""
    metrics_path = out_dir / "metrics.json"
    if metrics_path.exists() or (out_dir / "checkpoint.pt").exists():
        if not resume:
            raise FileExistsError(f"{out_dir} already holds a run; pass --resume to continue it "
                                  f"or choose another --out")
        finished = read_metrics(metrics_path) if metrics_path.exists() else None
        _check_same_config(out_dir, cfg, finished)
        if finished is not None:
            return finished
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "config.json", cfg.to_dict())
    return None


# What a finished run's metrics.json holds, at least: what `rclrec train` reports from it.
METRICS_FIELDS = {"method": str, "encoder": str, "dataset": str, "seed": int, "best_epoch": int,
                  "epochs_run": int, "train_seconds": (int, float), "valid": dict, "test": dict,
                  "config": dict}


def read_metrics(path: Path) -> dict[str, Any]:
    """A finished run's metrics.json, checked for the fields that are read from it.

    Raises:
        CorruptFile: not JSON, or valid JSON without those fields (emptied, overwritten).
    """
    metrics = read_json(path)
    problem = (f"holds a {type(metrics).__name__}, not an object"
               if not isinstance(metrics, dict) else
               next((f"{key!r} is missing or not a {getattr(kind, '__name__', 'number')}"
                     for key, kind in METRICS_FIELDS.items()
                     if not isinstance(metrics.get(key), kind)
                     or isinstance(metrics.get(key), bool)), None))
    if problem is None:
        evaluation = metrics["config"].get("eval")
        if not isinstance(evaluation, dict) or not isinstance(evaluation.get("ks"), list):
            problem = "'config' has no eval.ks list"
    if problem is not None:
        raise CorruptFile(f"{path}: not a metrics.json written by rclrec ({problem}); train "
                          f"the run again or restore the file")
    return metrics


# Settings that do not change a run's results: a finished run is returned whatever they are.
RESULT_FREE = {"train.device", "train.threads", "train.eval_batch_size", "train.track"}
# Settings an interrupted run may also change when continued: its epoch budget.
CONTINUATION_FREE = RESULT_FREE | {"train.epochs", "train.patience"}


def _check_same_config(out_dir: Path, cfg: ExperimentConfig,
                       finished: dict[str, Any] | None = None) -> None:
    """Resuming with other settings would mix two experiments in one folder, or return the
    results of other settings than those asked for.

    A finished run is compared with the settings its metrics.json records (every one that can
    change results), an interrupted one with its config.json. The saved config is rebuilt and
    resolved first, so settings added to rclrec since the run started take their defaults
    instead of counting as a change.
    """
    if finished is not None:
        saved_path, recorded = out_dir / "metrics.json", finished["config"]
        free, state = RESULT_FREE, "finished run"
    else:
        saved_path = out_dir / "config.json"
        if not saved_path.exists():
            return
        recorded = read_json(saved_path)
        free, state = CONTINUATION_FREE, "run started"
    try:
        if not isinstance(recorded, dict):
            raise ConfigError(f"holds a {type(recorded).__name__}, not a config")
        saved = _flat(resolve(config_from_dict(recorded)).read_settings())
    except ConfigError as e:  # the file's settings, not the user's: the file is at fault
        raise CorruptFile(f"{saved_path}: not a run's settings as rclrec writes them ({e}); "
                          f"use another --out") from None
    now = _flat(cfg.read_settings())  # a run does not depend on other methods' sections
    diff = [f"{key} {saved.get(key)!r} there, {value!r} asked" for key, value in now.items()
            if key not in free and value != saved.get(key)]
    if diff:
        raise ConfigError(f"{out_dir} holds a {state} with other settings ({'; '.join(diff)}); "
                          f"use another --out")


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out
