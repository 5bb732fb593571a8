"""A run folder: diverged runs leave no results, one process trains it at a time, a finished
run is returned only for the settings it was trained with."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rclrec.cli import main
from rclrec.config import ConfigError
from rclrec.locks import LockBusy, exclusive_lock
from rclrec.run import LOCK_FILE, RunDiverged, run_training
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def lock_is_free(run: Path) -> bool:
    try:
        with exclusive_lock(run / LOCK_FILE, "test"):
            return True
    except LockBusy:
        return False


# ---------------------------------------------------------------------- diverged runs
@pytest.mark.parametrize("steps,found", [("1", "scores contain NaN"),  # the step's loss was finite
                                          ("2", "step 2: loss is nan")])
def test_a_diverged_run_is_an_error_naming_the_run_and_writes_no_metrics(tmp_path, capsys,
                                                                         steps, found, tiny_flags):
    out = tmp_path / "x"
    code = main(["train", *tiny_flags, "--set", "train.lr=1e6", "--epochs", "1", "--max-steps",
                 steps, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"rclrec train: error: run {out} diverged: ") and "Traceback" not in err
    assert found in err and len(err.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()
    assert lock_is_free(out)  # released on the error


def test_weights_that_turn_nan_stop_the_run(tmp_path, monkeypatch, tiny_config):
    # The loss guard sees each step's loss before its update; the epoch's last update can
    # still leave NaN weights behind.
    original = Trainer.train_epoch

    def poisoned(self, epoch):
        losses = original(self, epoch)
        with torch.no_grad():
            next(self.encoder.parameters()).fill_(float("nan"))
        return losses

    monkeypatch.setattr(Trainer, "train_epoch", poisoned)
    with pytest.raises(RunDiverged, match=r"run .*r diverged: epoch 1: weights became NaN"):
        run_training(tiny_config(), tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r" / "metrics.json").exists()
    assert not (tmp_path / "r" / "checkpoint.pt").exists()  # no checkpoint of NaN weights


def test_evaluate_of_a_run_with_nan_weights_is_an_error_naming_it(tmp_path, capsys, tiny_config):
    run = tmp_path / "r"
    run_training(tiny_config(), run, show_progress=False)
    saved = torch.load(run / "model.pt", weights_only=True)
    for value in saved["state_dict"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(saved, run / "model.pt")
    assert main(["evaluate", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rclrec evaluate: error: run {run} diverged: ")


# ---------------------------------------------------------------------- the lock
def hold_lock(run: Path) -> subprocess.Popen:
    """Another process that holds the run folder's lock until killed."""
    code = ("import sys, time; from rclrec.locks import exclusive_lock\n"
            f"with exclusive_lock({str(run / LOCK_FILE)!r}, 'x'):\n"
            "    print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder_until_it_dies(tmp_path, capsys, tiny_flags):
    out = tmp_path / "r"
    holder = hold_lock(out)
    try:
        code = main(["train", *tiny_flags, "--epochs", "1", "--max-steps", "2", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith(f"rclrec train: error: run folder {out} is in use by pid "
                              f"{holder.pid} on {socket.gethostname()} since ")
        assert not (out / "config.json").exists()  # the refused process wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops its lock
        holder.wait()
    assert main(["train", *tiny_flags, "--epochs", "1", "--max-steps", "2", "--out", str(out)]) == 0
    assert lock_is_free(out)


def test_the_lock_is_held_while_training_and_released_on_a_crash(tmp_path, monkeypatch,
                                                                 tiny_config):
    seen = []
    original = Trainer.train_epoch

    def crashing(self, epoch):
        seen.append(lock_is_free(self.out_dir))
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config(), tmp_path / "r", show_progress=False)
    assert seen == [False] and lock_is_free(tmp_path / "r")
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert run_training(tiny_config(), tmp_path / "r", resume=True,
                        show_progress=False)["epochs_run"] == 1


# ---------------------------------------------------------------------- resume rule
def test_resume_of_a_finished_run_with_other_settings_is_refused(tmp_path, tiny_config):
    run_training(tiny_config(), tmp_path / "r", show_progress=False)
    with pytest.raises(ConfigError, match=r"finished run .*train\.epochs 1 there, 2 asked"):
        run_training(tiny_config(train__epochs=2), tmp_path / "r", resume=True, show_progress=False)
    # Device and threads do not change results: the finished run is returned.
    again = run_training(tiny_config(train__threads=2), tmp_path / "r", resume=True,
                         show_progress=False)
    assert again["epochs_run"] == 1


def test_resume_checks_the_settings_the_metrics_were_made_with(tmp_path, tiny_config):
    # Two old processes in one folder left one's config.json beside the other's metrics.json.
    run_training(tiny_config(), tmp_path / "r", show_progress=False)
    mixed = json.loads((tmp_path / "r" / "config.json").read_text())
    mixed["train"]["seed"] = 1
    (tmp_path / "r" / "config.json").write_text(json.dumps(mixed))
    with pytest.raises(ConfigError, match=r"train\.seed 0 there, 1 asked"):
        run_training(tiny_config(train__seed=1), tmp_path / "r", resume=True, show_progress=False)
