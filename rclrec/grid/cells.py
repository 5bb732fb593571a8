"""A cell: one `train` run named by the hash of its resolved configuration.

The bulky run folder (checkpoints, model.pt) lives under ``work/<hash>``; the committed part is
``results/cells/<hash>/cell.json``. A cell with a cell.json is finished and never retrained, so
an interrupted benchmark resumes, and several processes or machines can fill one grid (a
per-cell lock keeps two local processes off the same cell).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rclrec.config import ExperimentConfig, config_from_dict, settings_as_hashed
from rclrec.files import read_json, write_json_atomic, write_text_atomic
from rclrec.locks import LockBusy, exclusive_lock

# Settings that do not change what is computed: left out of the hash, so a grid can be filled
# on other machines (device, threads) or with the data found in another folder.
UNHASHED = (("train", "device"), ("train", "threads"), ("train", "eval_batch_size"),
            ("data", "data_dir"), ("train", "track"))
HASH_LENGTH = 16


class CellUnavailable(RuntimeError):
    """A cell that is not finished and is not trained by this call."""


class CellBusy(CellUnavailable, LockBusy):
    """Another process holds the cell's lock (it is training it now)."""


class CellNotTrained(CellUnavailable):
    """The cell is not finished and training was not allowed (``--no-train``)."""


def hashed_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved configuration of the sections a run reads (the shared ones and its
    method's own), as JSON types, without the unhashed settings."""
    from rclrec.run import resolve  # here: reading finished cells (reports) needs no torch

    d = json.loads(json.dumps(resolve(cfg).read_settings()))
    for section, key in UNHASHED:
        d[section].pop(key, None)
    return settings_as_hashed(d)  # cells made before a setting existed keep their hashes


def config_hash(cfg: ExperimentConfig) -> str:
    """A stable hex digest of the resolved configuration (same settings, same hash).

    Raises:
        ConfigError, ValueError: the configuration does not resolve (e.g. unknown method).
    """
    text = json.dumps(hashed_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def cell_path(results: str | os.PathLike, digest: str) -> Path:
    return Path(results) / "cells" / digest / "cell.json"


def load_cell(results: str | os.PathLike, digest: str) -> dict[str, Any] | None:
    path = cell_path(results, digest)
    return read_json(path) if path.exists() else None


def cell_summary(digest: str, metrics: dict[str, Any], settings: dict[str, Any],
                 wall_seconds: float) -> dict[str, Any]:
    cfg = metrics["config"]
    summary = {
        "hash": digest,
        "method": metrics["method"],
        "encoder": metrics["encoder"],
        "dataset": metrics["dataset"],
        "seed": metrics["seed"],
        "settings": settings,
        "valid": metrics["valid"],
        "test": metrics["test"],
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "seconds": metrics["train_seconds"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "seconds_to_best": metrics["seconds_to_best"],
        "wall_seconds": round(wall_seconds, 3),
        "cpu_seconds": metrics.get("cpu_seconds"),
        "git_commit": metrics["git_commit"],
        "device": metrics["device"],
        "machine": metrics.get("machine"),
        "data": metrics.get("data"),
        "config": cfg,
    }
    # RCL and its controls: the sequences and CE positions the rec. loss sees beside each
    # centre, mean over epochs (the controls match RCL in sequences, not in positions).
    extra = {key: [h[key] for h in metrics.get("history", []) if key in h]
             for key in ("extra_sequences", "extra_positions")}
    if all(extra.values()):
        summary["extra_per_centre"] = {key: round(sum(v) / len(v), 4)
                                       for key, v in extra.items()}
    return summary


@contextmanager
def cell_lock(work: Path, digest: str) -> Iterator[None]:
    """Hold the cell's lock file while a process trains or renames it.

    Raises:
        CellBusy: another process holds it.
    """
    with exclusive_lock(work / f"{digest}.lock", f"busy: cell {digest}", busy=CellBusy):
        yield


def run_cell(cfg: ExperimentConfig, results: str | os.PathLike, work: str | os.PathLike, *,
             settings: dict[str, Any] | None = None, show_progress: bool = False,
             train: bool = True) -> tuple[dict[str, Any], bool]:
    """Train a cell unless it is finished; return (cell summary, reused).

    Args:
        cfg: the cell's configuration (device and threads do not enter the hash).
        results: the committed results folder (cell.json goes to ``cells/<hash>/``).
        work: the git-ignored folder of run directories (``<work>/<hash>``).
        settings: the flat settings that define the cell beyond the profile, recorded as is.
        train: False = only reuse a finished cell.

    Raises:
        CellBusy: another process is training this cell.
        CellNotTrained: the cell is not finished and ``train`` is False.
    """
    from rclrec.run import run_training

    digest = config_hash(cfg)
    done = load_cell(results, digest)
    if done is not None:
        return done, True
    if not train:
        raise CellNotTrained(f"cell {digest} is not finished (not trained: --no-train)")
    run_dir = Path(work) / digest
    run_dir.mkdir(parents=True, exist_ok=True)
    with cell_lock(Path(work), digest):
        done = load_cell(results, digest)  # finished while we waited for the lock
        if done is not None:
            return done, True
        start = time.perf_counter()
        metrics = run_training(cfg, run_dir, resume=True, show_progress=show_progress)
        cell = cell_summary(digest, metrics, dict(settings or {}), time.perf_counter() - start)
        write_json_atomic(cell_path(results, digest), cell)
    return cell, False


def rekey_cells(results: str | os.PathLike, work: str | os.PathLike
                ) -> tuple[dict[str, str], list[str]]:
    """Rename the cells whose hash changed, and every reference to them.

    A setting added to a section a method reads changes the hash of every cell of that method,
    although a default that keeps the old behaviour leaves what the cell computed unchanged.
    Each finished cell (``cell.json``) and each unfinished run folder (``config.json``) is
    hashed again from its saved configuration, the new settings taking their defaults; its
    folders (cell, analysis, run folder) are renamed and the manifests and searches that name
    it are rewritten. A default that changes behaviour is not a case for this: its cells differ.

    A cell that another process is training is left alone (``busy`` lists it): run this again
    once it is finished.

    Returns:
        ({old: new} of the renamed cells, [old hashes of the busy ones]).

    Raises:
        FileExistsError: the new name is taken (the cell was trained again meanwhile).
    """
    import rclrec.methods  # noqa: F401 - registers the method sections config_from_dict reads

    results, work = Path(results), Path(work)
    moves: dict[str, str] = {}
    for path in sorted(results.glob("cells/*/cell.json")):
        old = path.parent.name
        new = config_hash(config_from_dict(read_json(path)["config"]))
        if new != old:
            moves[old] = new
    for path in sorted(work.glob("*/config.json")):
        old = path.parent.name
        new = config_hash(config_from_dict(read_json(path)))
        if new != old:
            moves.setdefault(old, new)
    if moves:
        work.mkdir(parents=True, exist_ok=True)
    busy = []
    for old, new in list(moves.items()):
        try:
            with cell_lock(work, old):
                folders = [f for f in (results / "cells", results / "analysis", work)
                           if (f / old).exists()]
                for folder in folders:
                    if (folder / new).exists():
                        raise FileExistsError(f"cannot rename cell {old} to {new}: "
                                              f"{folder / new} exists")
                for folder in folders:
                    (folder / old).rename(folder / new)
        except CellBusy:
            busy.append(old)
            del moves[old]
            continue
        (work / f"{old}.lock").unlink()
    if moves:  # the cells themselves, manifests, searches and analyses name cells by hash
        for path in [*results.glob("cells/*/cell.json"), *results.glob("suites/*.json"),
                     *results.glob("searches/*.json"), *results.glob("analysis/*/*.json")]:
            text = original = path.read_text()
            for old, new in moves.items():
                text = text.replace(old, new)
            if text != original:
                write_text_atomic(path, text)
    return moves, busy
