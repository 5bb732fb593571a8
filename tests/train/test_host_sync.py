"""A training step never makes the device wait for the host (issue 15).

On a GPU, reading a value back (``float(loss)``, ``.item()``, ``if tensor``, a boolean mask,
whose count the host needs) or a blocking copy to it waits until the device has finished all
queued work. The step runs here on the ``meta`` device, whose tensors have shapes but no
values: every read of a value raises there, and the guard below fails a blocking copy.
"""

import contextlib

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from rclrec.data.split import leave_one_out
from rclrec.losses.contrastive import (
    ContrastBatch,
    RCLLossConfig,
    fill_missing_strong,
    relative_contrastive_loss,
)
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import StepSums, Trainer

META = torch.device("meta")
aten = torch.ops.aten


class NoBlockingCopies(TorchDispatchMode):
    """Fails what makes the host wait for the device on the way in: a host-to-device copy
    without ``non_blocking``, and an op given host tensors (more than a scalar) beside device
    ones, such as a device tensor indexed by CPU indices, which CUDA copies there blocking."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._to_copy.default:  # tensor.to(device)
            source, target = args[0], kwargs.get("device")
            non_blocking = kwargs.get("non_blocking", False)
        elif func is aten.copy_.default:  # target.copy_(source)
            source, target = args[1], args[0].device
            non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        else:
            tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if (any(t.device == META for t in tensors)
                    and any(t.device.type == "cpu" and t.dim() > 0 for t in tensors)):
                raise AssertionError(f"host tensors beside device tensors ({func}): a "
                                     f"blocking copy")
            return func(*args, **kwargs)
        to_device = target is not None and torch.device(target).type == "meta"
        if source.device.type == "cpu" and to_device and not non_blocking:
            raise AssertionError(f"a blocking host-to-device copy ({func})")
        return func(*args, **kwargs)


class NoHostDataToTheDevice(TorchFunctionMode):
    """Fails ``torch.tensor(data, device=...)`` and ``torch.as_tensor``'s copy of host data:
    a blocking copy, made below the dispatcher where ``NoBlockingCopies`` cannot see it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor):
            device = kwargs.get("device", args[2] if len(args) > 2 else None)
            on_device = isinstance(args[0], torch.Tensor) and args[0].device == META
            if device is not None and torch.device(device) == META and not on_device:
                raise AssertionError(f"host data copied to the device by {func.__name__}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def device_guard():
    """Both guards: nothing in the block may wait for the device."""
    with NoHostDataToTheDevice(), NoBlockingCopies():
        yield


def meta_autocast(real):
    """torch.autocast that is a no-op context on the meta device (which has none)."""
    def autocast(device_type, *args, **kwargs):
        if device_type == "meta":
            return contextlib.nullcontext()
        return real(device_type, *args, **kwargs)
    return autocast


def meta_trainer(tiny_config, tmp_path, method: str, **settings) -> Trainer:
    cfg = resolve(tiny_config({"method": method, "train.batch_size": "64", **settings}))
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    torch.manual_seed(0)
    method_obj = method_class(cfg.method)(cfg, split, instances, META)
    encoder = build_encoder(cfg.encoder, split.num_items, method_obj.extra_tokens).to(META)
    trainer = Trainer(cfg, split, instances, encoder, method_obj, META, tmp_path,
                      show_progress=False)
    # The fused Adam kernel has no meta version; the update itself reads nothing back.
    trainer.optimizer = torch.optim.Adam(trainer.params, lr=cfg.train.lr, foreach=False)
    method_obj.setup(encoder)
    return trainer


def run_steps(trainer: Trainer, monkeypatch, steps: int = 2) -> StepSums:
    monkeypatch.setattr(torch, "autocast", meta_autocast(torch.autocast))
    sums = StepSums(META)
    order = np.random.default_rng(0).permutation(len(trainer.instances))
    with device_guard():
        for step in range(1, steps + 1):
            trainer.train_step(step, order[(step - 1) * 64:step * 64], sums)
    return sums


@pytest.mark.parametrize("method, settings", [
    ("sasrec", {}), ("sasrec", {"train.loss": "bce"}), ("sasrec", {"train.loss": "sampled"}),
    ("sasrec", {"train.loss": "gbce"}), ("sasrec", {"encoder.name": "fmlp"}),
    ("rcl", {}), ("rcl", {"encoder.name": "fmlp"}), ("rcl", {"rcl.variant": "strong"}),
    ("rcl", {"rcl.variant": "official", "rcl.score": "dot"}),
    ("rcl", {"rcl.strong_positives": "prefixes"}),
    ("cl4srec", {}), ("duorec", {}), ("ct4rec", {}), ("mclrec", {}), ("contrarec", {}),
    ("hpm", {}), ("random_positives", {}), ("repeated_centres", {})])
def test_a_training_step_reads_nothing_back_from_the_device(tiny_config, tmp_path, monkeypatch,
                                                            method, settings):
    trainer = meta_trainer(tiny_config, tmp_path, method, **settings)
    sums = run_steps(trainer, monkeypatch)
    assert "loss" in sums.sums and all(v.device == META for v in sums.sums.values()
                                       if isinstance(v, torch.Tensor))


def test_the_guard_catches_each_kind_of_read(tiny_config, tmp_path, monkeypatch):
    """The checks above could fail: each way of reading the device raises under them."""
    monkeypatch.setattr(torch, "autocast", meta_autocast(torch.autocast))
    x = torch.ones(4, device=META)
    reads = [lambda: float(x.sum()), lambda: x.sum().item(), lambda: bool(x.any()),
             lambda: x.tolist(), lambda: x[x > 0], lambda: x.cpu(),
             lambda: torch.zeros(4).to(META), lambda: torch.tensor([1, 2], device=META),
             lambda: torch.as_tensor(np.arange(2), device=META),
             lambda: x[torch.tensor([0, 1])], lambda: x.index_select(0, torch.tensor([0])),
             lambda: x.gather(0, torch.zeros(4, dtype=torch.long)),
             lambda: x.index_put_((torch.tensor([0]),), torch.ones((), device=META)),
             lambda: x.index_copy(0, torch.tensor([0]), torch.ones(1, device=META))]
    with device_guard():
        for read in reads:
            with pytest.raises((RuntimeError, NotImplementedError, AssertionError)):
                read()
        torch.zeros(4).to(META, non_blocking=True)  # the way a step copies to the device
        x[torch.zeros(4, dtype=torch.long).to(META, non_blocking=True)]  # indices copied so
        x * torch.tensor(2.0)  # a host scalar is a parameter of the kernel, not a copy


def test_negative_weights_are_caught_on_the_host_whatever_the_device(tiny_config, tmp_path,
                                                                     monkeypatch):
    """The weighted loss checks its weights only on the CPU (on a GPU the check would wait for
    the device): RCL checks its host array before the copy, here on the meta device."""
    trainer = meta_trainer(tiny_config, tmp_path, "rcl", **{"rcl.similarity": "jaccard"})
    run_steps(trainer, monkeypatch, steps=1)  # positive weights: no error
    index = trainer.method.index
    index.scores[:] = -index.scores
    with pytest.raises(ValueError, match="negative or not finite"):
        run_steps(trainer, monkeypatch, steps=1)


@pytest.mark.parametrize("variant", ["rcl", "strong"])
def test_host_masks_meet_representations_on_another_device(variant, monkeypatch):
    """The contrastive loss's masks may stay on the host (they should, with a GPU): every one
    of them, the self-view mask included, meets representations on another device."""
    monkeypatch.setattr(torch, "autocast", meta_autocast(torch.autocast))
    g = torch.Generator().manual_seed(0)
    hc, hs, hw = (torch.randn(4, 3, generator=g) for _ in range(3))
    has_s, has_w = torch.tensor([True, False, True, False]), torch.tensor([True, True, False,
                                                                           False])
    h_s, has_all, is_view = fill_missing_strong(hs, has_s, hc + 0.1)
    weights = None if variant == "strong" else torch.ones(4, 4 + 4 + 2, device=META)
    batch = ContrastBatch(hc.to(META), h_s.to(META), has_all, hw.to(META), has_w, weights,
                          strong_is_view=is_view)
    with device_guard():
        loss, stats = relative_contrastive_loss(batch, RCLLossConfig(variant=variant))
    assert loss.device == META and stats["self_view"].device == META


class RecordCopies(TorchDispatchMode):
    """Counts the copies made by ``tensor.to(device)``."""

    count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is aten._to_copy.default
        return func(*args, **(kwargs or {}))


def test_a_batch_copies_its_targets_to_the_device_only_when_asked(tiny_config, tmp_path):
    """Most methods use only the host targets: no copy for them; one, kept, for the others."""
    trainer = meta_trainer(tiny_config, tmp_path, "sasrec")
    with device_guard(), RecordCopies() as copies:
        batch = trainer.make_batch(np.arange(64))
        assert copies.count == 1  # the inputs
        assert batch.targets.device == META
        assert batch.targets.shape == torch.Size(batch.host_targets.shape)
        assert batch.targets is batch.targets and copies.count == 2
