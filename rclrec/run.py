"""A run as a recipe: config -> data -> encoder and method -> fit -> evaluate -> files."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from rclrec.config import ConfigError, ExperimentConfig, config_from_dict
from rclrec.data.batches import TrainingInstances, prefix_instances, window_instances
from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.io import existing_file
from rclrec.data.registry import (
    default_max_len,
    load_dataset,
    load_training_data,
    reader_options,
    split_data,
    split_dataset,
)
from rclrec.data.split import HeldOutSplit, LeaveOneOutSplit, evaluation_cases
from rclrec.errors import InputError
from rclrec.eval.ranking import NonFiniteScores
from rclrec.files import CorruptFile, read_json, write_json_atomic
from rclrec.locks import exclusive_lock
from rclrec.methods import method_class
from rclrec.models import ENCODERS, build_encoder
from rclrec.train.checkpoint import load_torch, save_torch_atomic, state_dict_problem
from rclrec.train.distributed import close_world, init_world
from rclrec.train.trainer import Trainer, TrainingError

MODEL_FORMAT = 1
LOCK_FILE = "run.lock"  # held while a process trains the folder (rclrec/locks.py)


class RunDiverged(InputError):
    """A run's loss, weights or scores became NaN or infinite: it has no results to give
    (a ValueError: the settings, e.g. train.lr, are the cause, not rclrec's code)."""


def diverged(run_dir: str | os.PathLike, error: Exception) -> RunDiverged:
    return RunDiverged(f"run {run_dir} diverged: {error}")


Split = LeaveOneOutSplit | HeldOutSplit  # the trainer and the methods take either


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """Fill the settings that depend on others: max_len by dataset, instances by encoder, the
    positives' recommendation loss by instances."""
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
    rec_on_positives = cfg.rcl.positives_get_rec_loss(instances)
    # A baseline's unset settings take its class defaults here, so that cells record (and hash)
    # the values trained with: a changed default re-keys exactly the cells it changes.
    baseline = cfg.baseline
    if uses_section(cfg.method, "baseline"):
        unread = [f.name for f in dataclasses.fields(baseline)
                  if getattr(baseline, f.name) is not None and f.name not in method.hyper]
        if unread:
            raise ConfigError(f"--method {cfg.method} does not read baseline.{unread[0]}; its "
                              f"settings are baseline.{', baseline.'.join(method.hyper)}")
        baseline = dataclasses.replace(baseline, **method.resolved_hyper(cfg))
    return dataclasses.replace(
        cfg,
        baseline=baseline,
        data=dataclasses.replace(cfg.data, max_len=max_len),
        encoder=dataclasses.replace(cfg.encoder, max_len=max_len),
        train=dataclasses.replace(cfg.train, instances=instances),
        rcl=dataclasses.replace(cfg.rcl, rec_loss_on_positives=rec_on_positives),
    )


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


def git_commit() -> str | None:
    """HEAD of the checkout (``-dirty`` with uncommitted changes); ``$RCLREC_GIT_COMMIT`` where
    the code travelled without its .git folder (a lent GPU machine)."""
    if os.environ.get("RCLREC_GIT_COMMIT"):
        return os.environ["RCLREC_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# The commit of the code this process loaded: a benchmark process trains cell after cell for
# hours while the checkout moves on, so HEAD at a run's start can be newer than its code.
CODE_COMMIT = git_commit()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
    method = method_class(cfg.method)(cfg, split, instances, device)
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
    save_torch_atomic(out_dir / "model.pt", {
        "format": MODEL_FORMAT,
        "config": cfg.to_dict(),
        "num_items": split.num_items,
        "extra_tokens": method.extra_tokens,
        "item_ids": dataset.item_ids,  # serving names items as the data file does
        "state_dict": encoder.state_dict(),
    })
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
        saved = _flat(resolve(config_from_dict(recorded)).to_dict())
    except ConfigError as e:  # the file's settings, not the user's: the file is at fault
        raise CorruptFile(f"{saved_path}: not a run's settings as rclrec writes them ({e}); "
                          f"use another --out") from None
    now = _flat(cfg.to_dict())
    # A method's run does not depend on the sections of other methods.
    unused = tuple(f"{section}." for section in ("rcl", "baseline")
                   if not uses_section(cfg.method, section))
    method = method_class(cfg.method)  # ... nor on the fields of its own it does not read
    unread = {key for key in now if method.section and key.startswith(f"{method.section}.")
              and key.split(".", 1)[1] not in method.reads()}
    diff = [f"{key} {saved.get(key)!r} there, {value!r} asked" for key, value in now.items()
            if key not in free and not key.startswith(unused) and key not in unread
            and value != saved.get(key)]
    if diff:
        raise ConfigError(f"{out_dir} holds a {state} with other settings ({'; '.join(diff)}); "
                          f"use another --out")


def uses_section(method: str, section: str) -> bool:
    """Whether a method reads a method-specific config section (``rcl`` or ``baseline``)."""
    return method_class(method).section == section


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def device_label(device: torch.device) -> str:
    """What results record as the device: "cpu", or the GPU's model name."""
    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a trained encoder and its config from ``run_dir/model.pt``."""
    return model_from_saved(read_model_file(run_dir), device)


def read_model_file(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir/model.pt``, checked against its own config before anything is built from it.

    Raises:
        FileNotFoundError: no model.pt (not a finished run).
        CorruptFile: damaged, forged or not written by rclrec (the message names the file).
    """
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a finished run?)")
    saved = load_torch(path)
    check_model_file(saved, path)
    return saved


def check_model_file(saved: Any, path: Path) -> None:
    """The contents of a model.pt are what ``run_training`` writes: a valid config, and tensors
    of exactly the sizes that config and ``num_items`` give. The sizes are worked out on the
    meta device, so a file that declares a huge item table allocates nothing."""
    def bad(reason: str) -> CorruptFile:
        return CorruptFile(f"{path}: not a model file written by rclrec ({reason})")

    if not isinstance(saved, dict):
        raise bad(f"holds a {type(saved).__name__}, not a dict")
    for key, kind in (("config", dict), ("num_items", int), ("state_dict", dict)):
        if not isinstance(saved.get(key), kind) or isinstance(saved.get(key), bool):
            raise bad(f"{key!r} is missing or not a {kind.__name__}")
    if saved.get("format", MODEL_FORMAT) != MODEL_FORMAT:
        raise bad(f"format {saved.get('format')!r}; this rclrec reads format {MODEL_FORMAT}")
    num_items, extra = saved["num_items"], saved.get("extra_tokens", 0)
    if num_items < 1 or not isinstance(extra, int) or extra < 0:
        raise bad(f"num_items {num_items}, extra_tokens {extra!r}")
    item_ids = saved.get("item_ids")
    if item_ids is not None and (not isinstance(item_ids, list) or len(item_ids) != num_items
                                 or not all(isinstance(i, str) for i in item_ids)):
        raise bad(f"item_ids is not a list of {num_items} strings")
    try:
        cfg = config_from_dict(saved["config"])
        with torch.device("meta"), _SizesOnly():
            expected = build_encoder(cfg.encoder, num_items, extra).state_dict()
    except (ConfigError, ValueError) as e:
        raise bad(f"its config: {e}") from None
    problem = state_dict_problem(saved["state_dict"], expected)
    if problem is not None:
        raise bad(f"{problem} for a {cfg.encoder.name} encoder of {num_items} items")


class _SizesOnly(TorchFunctionMode):
    """Build a model on the meta device for its sizes alone: random initialisation, and
    arithmetic of a tensor with a number, leave sizes as they are and are skipped (on the meta
    device they go through torch's decompositions, which import torch._dynamo: seconds of
    start-up and tens of MB). An op missed here costs that time, never a wrong size."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func in _RANDOM_FILLS:
            return args[0] if args else kwargs["tensor"]
        if func in (torch.randn, torch.rand):
            return torch.empty(*args, **kwargs)
        if (getattr(func, "__name__", "").strip("_") in _WITH_A_NUMBER and len(args) == 2
                and isinstance(args[0], torch.Tensor) and isinstance(args[1], (int, float))):
            return args[0]
        return func(*args, **kwargs)


_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_,
                 torch.Tensor.random_}
_WITH_A_NUMBER = {"mul", "rmul", "div", "truediv", "add", "radd", "sub", "rsub"}


def model_from_saved(saved: dict[str, Any], device: str | torch.device = "cpu"):
    """The encoder (eval mode, on ``device``) and config of a loaded model.pt."""
    cfg = config_from_dict(saved["config"])
    encoder = build_encoder(cfg.encoder, saved["num_items"], saved.get("extra_tokens", 0))
    encoder.load_state_dict(saved["state_dict"])
    return encoder.to(device).eval(), cfg


def load_model_and_data(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The encoder, config and dataset of a finished run (evaluation, analysis)."""
    saved = read_model_file(run_dir)
    encoder, cfg = model_from_saved(saved, device)
    return encoder, cfg, data_of_model(cfg, Path(run_dir) / "model.pt", saved["num_items"])


def data_of_model(cfg: ExperimentConfig, path: Path, num_items: int) -> SequenceDataset:
    """The dataset a model file's config names, which must have the items it was trained on.

    A model file may come from anyone: when its dataset cannot be read the error names the
    dataset but repeats nothing the reader saw in it (a forged config could name any file).
    """
    try:
        dataset = load_data(cfg)
    except (OSError, ValueError):
        raise DataError(f"{path}: the dataset its config names ({cfg.data.dataset!r}) cannot be "
                        f"read; `rclrec stats --dataset {cfg.data.dataset}` says why") from None
    if dataset.num_items != num_items:
        raise DataError(f"{path} was trained on {num_items} items, but its dataset "
                        f"{cfg.data.dataset!r} now has {dataset.num_items}: the data changed "
                        f"since training")
    return dataset


def evaluate_run(run_dir: str | Path, *, device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a saved run on its validation and test cases.

    Raises:
        RunDiverged: the model scores some item NaN or infinite.
    """
    from rclrec.eval.ranking import evaluate_ranking

    dev = pick_device(device)
    encoder, cfg, dataset = load_model_and_data(run_dir, dev)
    split = split_dataset(cfg.data, dataset)
    e = cfg.eval
    kw = dict(batch_size=cfg.train.eval_batch_size, device=dev, exclude_history=e.exclude_history,
              ks=e.ks)
    try:
        return {
            "run": str(run_dir),
            "valid": evaluate_ranking(encoder, split.valid_inputs(), split.valid_targets,
                                      cfg.encoder.max_len, **kw),
            "test": evaluate_ranking(encoder, split.test_inputs(), split.test_targets,
                                     cfg.encoder.max_len, **kw),
        }
    except NonFiniteScores as err:
        raise diverged(run_dir, err) from None


def evaluate_file(run_dir: str | Path, path: str | Path, *, device: str = "auto"
                  ) -> dict[str, Any]:
    """Evaluate a saved run on a file of test histories: in each user's sequence the last item
    is the target and the earlier ones the input (any data format; items named as in the
    training data; read with the run's column settings, without k-core filter)."""
    from rclrec.eval.ranking import evaluate_ranking

    existing_file(path)  # before the model: a bad --input is named first
    dev = pick_device(device)
    saved = read_model_file(run_dir)
    encoder, cfg = model_from_saved(saved, dev)
    options = {**reader_options(cfg.data), "k_core": 0}
    cases = load_dataset(str(path), min_length=2, **options)
    item_ids = saved["item_ids"] or [str(i) for i in range(1, saved["num_items"] + 1)]
    inputs, targets, skipped = evaluation_cases(cases, item_ids)
    e = cfg.eval
    try:
        metrics = evaluate_ranking(encoder, inputs, targets, cfg.encoder.max_len,
                                   batch_size=cfg.train.eval_batch_size, device=dev,
                                   exclude_history=e.exclude_history, ks=e.ks)
    except NonFiniteScores as err:
        raise diverged(run_dir, err) from None
    return {"run": str(run_dir), "input": str(path), "cases": len(targets), "skipped": skipped,
            "test": metrics}
