"""Data-parallel training over processes and machines with torch.distributed.

Launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous), every
process (rank) holds a replica of the model and trains on its share of each epoch's batches;
after each backward pass the gradients are averaged over the ranks, so all ranks take the same
optimizer step and the replicas stay equal (checked after every epoch). Rank 0 validates, writes
the checkpoints and the results; the others receive its validation scores, and on resume its
checkpoint, so only rank 0 needs the run folder (machines need not share a disk).

Without torchrun (WORLD_SIZE unset or 1) nothing here does anything: a single process trains
exactly as before.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist

from rclrec.config import ConfigError
from rclrec.errors import InputError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: validates, writes files, shows progress."""
        return self.rank == 0

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; meant for small things: scores, a
        checkpoint)."""
        if self.size == 1:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share_error(self, error: Exception | None,
                    kinds: tuple[type[Exception], ...] = ()) -> None:
        """Raise rank 0's ``error`` on every rank; return on every rank when it has none.

        Every rank calls it (the others pass None), so none waits for rank 0 in vain. Rank 0
        raises its own error; the others get it as plain values (``error_record``: an
        exception object may not pickle) and raise one rebuilt from them
        (``rebuilt_error``): of its class if that is one of ``kinds``, an ``OSError`` or an
        ``InputError`` (the same one-line message), else a ``RuntimeError`` naming it.
        """
        record = self.share(None if error is None else error_record(error, kinds))
        if error is not None:
            raise error
        if record is not None:
            raise rebuilt_error(record, kinds)

    def average_gradients(self, params: list[torch.nn.Parameter],
                          loss: torch.Tensor) -> torch.Tensor:
        """Replace each gradient by its mean over the ranks, in one all-reduce that also
        averages ``loss``; returns the mean loss (``loss`` itself in a single process).

        A parameter without a gradient on this rank counts as a zero gradient, so every rank
        updates the same parameters.
        """
        if self.size == 1:
            return loss
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params] + [loss.reshape(1)])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return flat[-1]

    def broadcast_parameters(self, params: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values into every rank's tensors."""
        if self.size == 1:
            return
        for p in params:
            dist.broadcast(p.data, src=0)

    def check_in_sync(self, params: Iterable[torch.Tensor]) -> None:
        """Fail loudly if the replicas have drifted apart (they must stay equal)."""
        if self.size == 1:
            return
        local = torch.stack([p.detach().double().sum() for p in params])
        spread = local.clone()
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        low = local.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        if not torch.allclose(spread, low, rtol=1e-6, atol=1e-8):
            raise RuntimeError("data-parallel replicas differ after an epoch: a method updated "
                               "parameters outside the shared optimizer step")


SINGLE = World()


def error_record(error: Exception, kinds: tuple[type[Exception], ...] = ()
                 ) -> tuple[str, tuple[Any, ...]]:
    """``error`` as plain values that always pickle: the first of ``kinds``, ``OSError``
    and ``InputError`` it is an instance of (else its own class's name), and its arguments: an
    OSError's errno, reason and file, any other error's message."""
    known = [cls for cls in (*kinds, OSError, InputError) if isinstance(error, cls)]
    kind = known[0].__name__ if known else type(error).__name__
    if isinstance(error, OSError) and error.errno is not None:
        filename = None if error.filename is None else str(error.filename)
        return kind, (error.errno, error.strerror, filename)
    return kind, (str(error),)


def rebuilt_error(record: tuple[str, tuple[Any, ...]],
                  kinds: tuple[type[Exception], ...] = ()) -> Exception:
    """The error an ``error_record`` describes (its class if known here, else a
    RuntimeError: an error that is not about the input is a bug wherever it happened)."""
    kind, args = record
    known = {cls.__name__: cls for cls in (*kinds, OSError, InputError)}
    if kind in known:
        return known[kind](*args)
    return RuntimeError(f"rank 0 failed: {kind}: {args[0]}")


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


def init_world(device: str) -> tuple[World, str]:
    """Join the process group torchrun describes; returns the world and this rank's device.

    Args:
        device: train.device (auto | cpu | cuda | cuda:N); with several ranks and CUDA each
            rank takes GPU LOCAL_RANK.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE, device
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(close_world, wait=False)  # after an error: peers may be gone
    if dist.get_world_size() != size:
        raise ConfigError(f"WORLD_SIZE={size} but the process group has "
                          f"{dist.get_world_size()} ranks")
    return World(rank, size, local_rank), device


def close_world(wait: bool = True) -> None:
    """Leave the process group (together, with ``wait``), and free it now: a group left in a
    reference cycle is freed by the interpreter's last garbage collection, when its gloo threads
    can no longer take the GIL, and the process aborts ("terminate called without an active
    exception")."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()
