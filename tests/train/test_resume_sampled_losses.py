"""The sampled losses resume exactly: their negatives come from torch's default generator, whose
state every checkpoint holds (and data-parallel ranks reseed per epoch)."""

import pytest

from rclrec.run import run_training
from rclrec.tracking import TIME_KEYS
from rclrec.train.trainer import Trainer

# The tiny run over three epochs of three steps (the sampled losses get few negatives).
THREE_EPOCHS = {"data.max_len": "20", "encoder.num_blocks": "1", "train.batch_size": "64",
                "train.eval_batch_size": "512", "train.epochs": "3", "rcl.similarity": "jaccard"}


def per_epoch(metrics):
    """Every history entry without its clocks (the only entries that may differ)."""
    return [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in metrics["history"]]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sasrec", "rcl"])
@pytest.mark.parametrize("loss", ["sampled", "gbce"])
def test_killed_in_the_second_epoch_and_resumed_equals_uninterrupted(tmp_path, monkeypatch,
                                                                     tiny_config, method, loss):
    cfg = tiny_config({**THREE_EPOCHS, "method": method, "train.loss": loss,
                       "train.negatives": "8"})
    straight = run_training(cfg, tmp_path / "straight", show_progress=False)
    with monkeypatch.context() as patch:
        steps, original = [], Trainer.loss_step

        def dies_at_epoch_2_step_2(self, batch):  # 3 steps per epoch
            steps.append(1)
            if len(steps) == 5:
                raise KeyboardInterrupt
            return original(self, batch)

        patch.setattr(Trainer, "loss_step", dies_at_epoch_2_step_2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "resumed", show_progress=False)
    resumed = run_training(cfg, tmp_path / "resumed", resume=True, show_progress=False)
    assert [h["epoch"] for h in straight["history"]] == [1, 2, 3]
    assert per_epoch(resumed) == per_epoch(straight)
    assert resumed["test"] == straight["test"]


@pytest.mark.slow
def test_each_loss_trains_sasrec_and_rcl_on_the_synthetic_data(tmp_path, tiny_config):
    losses = {}
    for loss in ("ce", "sampled", "gbce"):
        for method in ("sasrec", "rcl"):
            negatives = {} if loss == "ce" else {"train.negatives": "8"}  # CE reads none
            cfg = tiny_config({**THREE_EPOCHS, **negatives, "method": method,
                               "train.loss": loss, "train.epochs": "2", "train.max_steps": "8"})
            metrics = run_training(cfg, tmp_path / f"{method}_{loss}", show_progress=False)
            history = metrics["history"]
            losses[method, loss] = [h["rec"] for h in history]
            assert history[-1]["rec"] < history[0]["rec"], (method, loss, history)
    # The sampled kinds' values differ from the full CE's (another objective, not a copy).
    assert losses["sasrec", "sampled"] != losses["sasrec", "ce"]
    assert losses["sasrec", "gbce"] != losses["sasrec", "ce"]
