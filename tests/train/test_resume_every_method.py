"""Every registered method resumes exactly: killed mid-epoch and resumed = never interrupted.

Each method's runs happen in a fresh Python process (this file run as a script): in one long
process, two identical RCL runs were seen to differ in the last float bits of some gradients
once other training had run before them, which would blur what this test checks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rclrec.methods import METHODS
from rclrec.train.checkpoint import load_torch

TINY = {"data.dataset": "synthetic", "data.max_len": "20", "encoder.hidden_dim": "16",
        "encoder.inner_dim": "32", "encoder.num_blocks": "1", "train.threads": "1",
        "train.batch_size": "64", "train.max_steps": "3", "train.eval_batch_size": "512",
        "train.epochs": "3", "rcl.similarity": "jaccard"}
WALL_CLOCK = ("train_seconds", "epoch_seconds")  # the only entries allowed to differ
ROOT = Path(__file__).resolve().parents[2]


def die_in_epoch(epoch: int) -> None:
    """Training dies inside ``epoch`` at its second optimizer step, as a killed process would
    (the epoch drew its order and stepped once: in-memory state moved on, the files did not)."""
    from rclrec.train.trainer import Trainer

    original = Trainer.train_epoch

    def train_epoch(self, e):
        if e == epoch:
            step, calls = self.optimizer.step, []

            def dies_at_the_second(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return step(*args, **kwargs)

            self.optimizer.step = dies_at_the_second
        return original(self, e)

    Trainer.train_epoch = train_epoch


def three_runs(method: str, folder: Path) -> None:
    """killed in epoch 2 -> uninterrupted -> the killed one resumed (the killed run goes first,
    so the runs that reach epoch 2 all find the caches, e.g. RCL's index, already built)."""
    from rclrec.config import load_config
    from rclrec.experiment import run_training
    from rclrec.train.trainer import Trainer

    cfg = load_config(overrides={**TINY, "method": method})
    original = Trainer.train_epoch
    die_in_epoch(2)
    try:
        run_training(cfg, folder / "resumed", show_progress=False)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    Trainer.train_epoch = original
    assert not (folder / "resumed" / "metrics.json").exists()
    run_training(cfg, folder / "straight", show_progress=False)
    run_training(cfg, folder / "resumed", resume=True, show_progress=False)


def per_epoch(run: Path) -> list[dict]:
    history = json.loads((run / "metrics.json").read_text())["history"]
    return [{k: v for k, v in h.items() if k not in WALL_CLOCK} for h in history]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(METHODS))
def test_killed_and_resumed_equals_uninterrupted(tmp_path, name):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RCLREC_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, __file__, name, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    assert [h["epoch"] for h in per_epoch(straight)] == [1, 2, 3]
    assert per_epoch(resumed) == per_epoch(straight)  # every loss and validation, every epoch
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (straight, resumed))
    assert a["test"] == b["test"]
    a, b = load_torch(straight / "checkpoint.pt"), load_torch(resumed / "checkpoint.pt")
    assert a["encoder"].keys() == b["encoder"].keys()
    for key in a["encoder"]:
        assert torch.equal(a["encoder"][key], b["encoder"][key]), key
    for x, y in zip(a["method"], b["method"], strict=True):
        assert torch.equal(x, y)


if __name__ == "__main__":
    three_runs(sys.argv[1], Path(sys.argv[2]))
