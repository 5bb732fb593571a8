"""The step loop: losses summed on the device, the NaN guard read out in batches, bf16."""

import functools
import math

import pytest
import torch

from rclrec.data.split import leave_one_out
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train import trainer as trainer_module
from rclrec.train.trainer import StepSums, Trainer, TrainingError

# The tiny run's epoch whole (no step cap), in batches of 64: more than three steps.
WHOLE_EPOCH = {"train.batch_size": "64", "train.max_steps": "none"}


@pytest.fixture
def make_trainer(tiny_config):
    return functools.partial(trainer_of, tiny_config)


def trainer_of(tiny_config, tmp_path, **extra) -> Trainer:
    cfg = resolve(tiny_config({**WHOLE_EPOCH, **extra}))
    torch.manual_seed(0)
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    device = torch.device("cpu")
    method = method_class(cfg.method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens)
    return Trainer(cfg, split, instances, encoder, method, device, tmp_path,
                   show_progress=False)


def record_losses(trainer: Trainer) -> list[float]:
    """Wraps loss_step to note each step's loss as the old loop read it (a float per step)."""
    seen, inner = [], trainer.loss_step

    def loss_step(batch):
        loss, stats = inner(batch)
        seen.append(float(loss.detach()))
        return loss, stats

    trainer.loss_step = loss_step
    return seen


def test_step_sums_equal_the_per_step_sums():
    sums = StepSums(torch.device("cpu"))
    values = [0.5, 1.25, 3.0]
    for step, v in enumerate(values, start=1):
        sums.add(step, torch.tensor(v), {"loss": torch.tensor(v), "host": 2 * v})
    assert sums.read() == {"loss": sum(values), "host": 2 * sum(values)}
    assert sums.first_non_finite() is None


def test_step_sums_keep_small_losses_after_large_ones():
    """Summed in float64: a float32 sum would lose every 1.0 added to 1e8 (float32 steps
    there are 8), as a long epoch loses the last bits of its losses."""
    sums = StepSums(torch.device("cpu"))
    sums.add(1, torch.tensor(1e8), {"loss": torch.tensor(1e8)})
    for step in range(2, 12):
        sums.add(step, torch.tensor(1.0), {"loss": torch.tensor(1.0)})
    assert sums.read() == {"loss": 1e8 + 10}
    sums.add(12, torch.tensor(float("nan")), {"loss": torch.tensor(float("nan"))})
    sums.add(13, torch.tensor(float("inf")), {"loss": torch.tensor(float("inf"))})
    step, value = sums.first_non_finite()
    assert step == 12 and value != value  # the first non-finite step, its NaN


@pytest.mark.parametrize("read_every", [1, 3, 1000])
def test_epoch_means_equal_the_per_step_losses(tmp_path, monkeypatch, read_every, make_trainer):
    monkeypatch.setattr(trainer_module, "READ_EVERY", read_every)
    trainer = make_trainer(tmp_path)
    seen = record_losses(trainer)
    means = trainer.train_epoch(1)
    assert len(seen) > 3
    assert means["loss"] == pytest.approx(sum(seen) / len(seen), rel=1e-6)
    assert means["rec"] == pytest.approx(means["loss"], rel=1e-6)  # SASRec: no extra loss


@pytest.mark.parametrize("read_every", [2, 1000])  # found inside the epoch, or at its end
def test_a_non_finite_loss_still_stops_the_run_naming_its_step(tmp_path, monkeypatch,
                                                               read_every, make_trainer):
    monkeypatch.setattr(trainer_module, "READ_EVERY", read_every)
    trainer = make_trainer(tmp_path)
    inner, calls = trainer.loss_step, []

    def loss_step(batch):
        loss, stats = inner(batch)
        calls.append(1)
        return (loss * math.inf if len(calls) == 3 else loss), stats

    trainer.loss_step = loss_step
    with pytest.raises(TrainingError, match=r"epoch 1 step 3: loss is (inf|nan); lower train.lr"):
        trainer.train_epoch(1)


def test_bf16_epoch_is_finite_and_close_to_fp32(tmp_path, make_trainer):
    fp32 = make_trainer(tmp_path / "a").train_epoch(1)
    bf16_trainer = make_trainer(tmp_path / "b", **{"train.precision": "bf16"})
    bf16 = bf16_trainer.train_epoch(1)
    assert math.isfinite(bf16["loss"])
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.02)
    # The weights stay float32: autocast changes the products, not the parameters.
    assert all(p.dtype == torch.float32 for p in bf16_trainer.params)


def test_too_few_batches_for_the_ranks_is_a_setting_error_not_a_divergence():
    from types import SimpleNamespace

    from rclrec.config import ConfigError

    fake = SimpleNamespace(world=SimpleNamespace(size=4, rank=0))
    with pytest.raises(ConfigError, match="train.batch_size") as caught:
        Trainer.my_batches(fake, [torch.zeros(2, 3)] * 3, epoch=1)
    assert not isinstance(caught.value, TrainingError)
