"""Every registered method resumes exactly: killed mid-epoch and resumed = never interrupted."""

import pytest
import torch

from rclrec.methods import METHODS
from rclrec.run import run_training
from rclrec.tracking import TIME_KEYS
from rclrec.train.checkpoint import load_torch
from rclrec.train.trainer import Trainer

# The tiny run over three epochs (killed in the second), smaller still for every method.
THREE_EPOCHS = {"data.max_len": "20", "encoder.num_blocks": "1", "train.batch_size": "64",
                "train.eval_batch_size": "512", "train.epochs": "3", "rcl.similarity": "jaccard",
                "hpm.num_clusters": "8"}  # the stand-in clusters stay tiny


def die_in_epoch(monkeypatch, epoch: int) -> None:
    """Training dies inside ``epoch`` at its second optimizer step, as a killed process would
    (the epoch drew its order and stepped once: in-memory state moved on, the files did not)."""
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

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def per_epoch(metrics):
    """Every history entry without its clocks (the only entries that may differ)."""
    return [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in metrics["history"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(METHODS))
def test_killed_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, name, tiny_config):
    cfg = tiny_config({**THREE_EPOCHS, "method": name})
    straight = run_training(cfg, tmp_path / "straight", show_progress=False)
    with monkeypatch.context() as patch:
        die_in_epoch(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "resumed", show_progress=False)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    resumed = run_training(cfg, tmp_path / "resumed", resume=True, show_progress=False)

    assert [h["epoch"] for h in straight["history"]] == [1, 2, 3]
    assert per_epoch(resumed) == per_epoch(straight)  # every loss and validation, every epoch
    assert resumed["test"] == straight["test"]
    a = load_torch(tmp_path / "straight" / "checkpoint.pt")
    b = load_torch(tmp_path / "resumed" / "checkpoint.pt")
    assert a["encoder"].keys() == b["encoder"].keys()
    for key in a["encoder"]:
        assert torch.equal(a["encoder"][key], b["encoder"][key]), key
    for x, y in zip(a["method"], b["method"], strict=True):
        assert torch.equal(x, y)
