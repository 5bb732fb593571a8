"""The training loop: epochs of steps, validation, early stopping, checkpoints and resume."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rclrec.config import ConfigError, ExperimentConfig
from rclrec.data.batches import TrainingInstances, batch_order, real_length
from rclrec.data.split import LeaveOneOutSplit
from rclrec.eval.ranking import NonFiniteScores, evaluate_ranking
from rclrec.files import CorruptFile
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods.base import Batch, Method
from rclrec.tracking import open_tracker
from rclrec.train.checkpoint import load_torch, save_torch_atomic, state_dict_problem
from rclrec.train.distributed import SINGLE, World


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


# Steps between reads of the summed losses (and the NaN check) on the host: a read waits for
# the device to finish, so reading every step would keep a GPU idle between steps.
READ_EVERY = 32


class StepSums:
    """Per-step losses summed where they are computed, and the first non-finite loss.

    ``add`` records tensors without reading them; ``read`` and ``first_non_finite`` copy the
    sums to the host (one synchronisation). A non-finite loss is still found: its step and
    value are kept on the device until the next read. The sums are float64 (float32 where the
    device has no float64: MPS), so that an epoch of many steps does not lose the last ones.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, torch.Tensor | float] = {}
        self.bad_step = torch.zeros((), dtype=torch.long, device=device)  # 0 = none yet
        self.bad_value = torch.zeros((), device=device)

    def add(self, step: int, shared_loss: torch.Tensor, stats: dict) -> None:
        first = (self.bad_step == 0) & ~torch.isfinite(shared_loss)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_value = torch.where(first, shared_loss.float(), self.bad_value)
        for k, v in stats.items():
            v = v.detach().to(self.dtype) if isinstance(v, torch.Tensor) else v
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def first_non_finite(self) -> tuple[int, float] | None:
        step = int(self.bad_step)
        return None if step == 0 else (step, float(self.bad_value))

    def read(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.sums.items()}


@dataclass
class TrainState:
    """Everything needed to continue an interrupted run exactly where it stopped."""

    epoch: int = 0  # epochs finished
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    train_seconds: float = 0.0  # wall time of finished epochs, training and validation
    # The process's CPU time over the same epochs (all its threads): the run's cost in
    # core-seconds, which wall time overstates on a machine shared with other jobs.
    cpu_seconds: float = 0.0
    seconds_to_best: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


class Trainer:
    """Fits an encoder with a method's loss; keeps the best validation state.

    Files in ``out_dir``: ``checkpoint.pt`` (after every epoch: model, optimizer, RNG and
    TrainState) and ``best.pt`` (the best validation weights so far), written by rank 0 of a
    data-parallel ``world`` (rclrec/train/distributed.py).
    """

    def __init__(self, cfg: ExperimentConfig, split: LeaveOneOutSplit,
                 instances: TrainingInstances, encoder: nn.Module, method: Method,
                 device: torch.device, out_dir: Path, show_progress: bool = True,
                 world: World = SINGLE) -> None:
        self.cfg = cfg
        self.split = split
        self.instances = instances
        self.encoder = encoder
        self.method = method
        self.device = device
        self.out_dir = out_dir
        self.world = world
        self.show_progress = show_progress and world.main
        self.params = list(encoder.parameters()) + list(method.parameters())
        # fused: one kernel for all parameters (the same update; several times faster on CPU).
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.train.lr,
                                          weight_decay=cfg.train.weight_decay, fused=True)
        world.broadcast_parameters(self.params)  # one starting point for every replica
        self.rng = np.random.default_rng(cfg.train.seed)
        self.state = TrainState()
        self.lengths = real_length(instances.inputs)
        self.tracker = open_tracker(cfg.train.track, out_dir, enabled=world.main)

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def save_checkpoint(self) -> None:
        save_torch_atomic(self.checkpoint_path, {
            "encoder": self.encoder.state_dict(),
            "method": [p.detach().cpu() for p in self.method.parameters()],
            "optimizer": self.optimizer.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "method_rng": self.method.random_state(),
            "method_optimizers": self.method.optimizer_state(),
            "method_state": self.method.checkpoint_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "state": self.state.__dict__,
        })

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` if present (rank 0 reads it for every rank); returns whether
        it did."""
        found = self.world.main and self.checkpoint_path.exists()
        ckpt = self.world.share(load_torch(self.checkpoint_path) if found else None)
        if ckpt is None:
            return False
        problem = self._checkpoint_problem(ckpt)
        if problem is not None:  # every rank has the checkpoint: all of them stop here
            raise self._corrupt_checkpoint(problem)
        self.encoder.load_state_dict(ckpt["encoder"])
        with torch.no_grad():
            for p, saved in zip(self.method.parameters(), ckpt["method"], strict=True):
                p.copy_(saved)
        try:  # these read nothing but the file's values: their failures are the file's
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.rng.bit_generator.state = ckpt["numpy_rng"]
            self.method.set_random_state(ckpt.get("method_rng", {}))
            self.method.set_optimizer_state(ckpt.get("method_optimizers", {}))
            torch.set_rng_state(ckpt["torch_rng"])
            if ckpt["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
            self.state = TrainState(**ckpt["state"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise self._corrupt_checkpoint(f"{type(e).__name__}: {e}") from None
        self.method.load_checkpoint_state(ckpt.get("method_state", {}))
        return True

    # What checkpoint.pt holds (save_checkpoint), by type; the rest is optional.
    CHECKPOINT_FIELDS = {"encoder": dict, "method": list, "optimizer": dict, "numpy_rng": dict,
                         "torch_rng": torch.Tensor, "cuda_rng": list, "state": dict}

    def _checkpoint_problem(self, ckpt: Any) -> str | None:
        """What keeps ``ckpt`` from being this run's checkpoint (a model.pt copied over it,
        another run's), or None: checked before anything is loaded from it."""
        if not isinstance(ckpt, dict):
            return f"holds a {type(ckpt).__name__}, not a dict"
        for key, kind in self.CHECKPOINT_FIELDS.items():
            if not isinstance(ckpt.get(key), kind):
                return f"{key!r} is missing or not a {kind.__name__}"
        problem = state_dict_problem(ckpt["encoder"], self.encoder.state_dict())
        if problem is not None:
            return f"encoder {problem}"
        params = list(self.method.parameters())
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in ckpt["method"]]
        if shapes != [tuple(p.shape) for p in params]:
            return f"method tensors {shapes}, expected {[tuple(p.shape) for p in params]}"
        return None

    def _corrupt_checkpoint(self, problem: str) -> CorruptFile:
        return CorruptFile(f"{self.checkpoint_path}: not a checkpoint of this run ({problem}); "
                           f"remove it to start the run again")

    # ------------------------------------------------------------------ steps
    def make_batch(self, index: np.ndarray) -> Batch:
        return Batch.of(self.instances, index, self.device)

    def loss_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """Recommendation loss (Eq. 3-4) plus the method's own weighted loss (e.g. Eq. 18).

        The stats may be tensors on the device: reading them each step would stall a GPU."""
        with self.autocast():
            hidden = self.encoder(batch.inputs)  # (B, L, D)
            states, targets = select_target_positions(hidden, batch.host_targets)
            rec = recommendation_loss(self.method.rec_loss, states, targets,
                                      self.encoder.item_table)
            extra, stats = self.method.extra_loss(batch, hidden, self.encoder)
        stats = {"rec": rec.detach(), **stats}
        rec = self.method.rec_loss_weight * rec
        return (rec if extra is None else rec + extra), stats

    def autocast(self) -> torch.autocast:
        """bf16 autocast of the forward pass when ``train.precision`` is bf16 (the CE keeps its
        softmax and loss in float32); a no-op context for fp32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.train.precision == "bf16")

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.encoder.train()
        self.method.on_epoch_start(epoch, self.encoder)
        batches = self.my_batches(batch_order(self.lengths, self.cfg.train.batch_size, self.rng),
                                  epoch)
        if self.cfg.train.max_steps is not None:
            batches = batches[: self.cfg.train.max_steps]
        sums = StepSums(self.device)
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="step", leave=False,
                   disable=not self.show_progress, dynamic_ncols=True)
        for step, index in enumerate(bar, start=1):
            self.train_step(step, index, sums)
            if step % READ_EVERY == 0 or step == len(batches):
                self.check_finite(epoch, sums)
                bar.set_postfix(loss=f"{sums.read()['loss'] / step:.4f}")
        return {k: v / max(len(batches), 1) for k, v in sums.read().items()}

    def train_step(self, step: int, index: np.ndarray, sums: StepSums) -> None:
        """One update on the instances ``index``; its losses go to ``sums``, unread: nothing
        here reads a value back from the device, which would make a GPU wait."""
        loss, stats = self.loss_step(self.make_batch(index))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # The ranks' mean loss: a NaN on one rank stops them all, not only that one.
        shared_loss = self.world.average_gradients(self.params, loss.detach())
        self.optimizer.step()
        sums.add(step, shared_loss, {**stats, "loss": loss.detach()})

    @staticmethod
    def check_finite(epoch: int, sums: StepSums) -> None:
        bad = sums.first_non_finite()
        if bad is not None:
            step, value = bad
            raise TrainingError(f"epoch {epoch} step {step}: loss is {value}; "
                                f"lower train.lr or check the method's settings")

    def my_batches(self, batches: list[np.ndarray], epoch: int) -> list[np.ndarray]:
        """This rank's share of the epoch's batches (all of them in a single process).

        Every rank draws the same order (same seed), takes every size-th batch and as many as
        the others, and seeds its dropout by (seed, epoch, rank): the replicas see different
        data and noise, and a resumed epoch draws the same again.
        """
        size = self.world.size
        if size == 1:
            return batches
        if len(batches) < size:
            # A setting error, not a diverged run.
            raise ConfigError(f"{len(batches)} batches per epoch for {size} ranks: lower "
                              f"train.batch_size or use fewer processes")
        seed = np.random.SeedSequence([self.cfg.train.seed, epoch, self.world.rank])
        torch.manual_seed(int(seed.generate_state(1)[0]))
        return batches[self.world.rank::size][: len(batches) // size]

    def validate(self) -> dict[str, float]:
        return self._evaluate(self.split.valid_inputs(), self.split.valid_targets)

    def shared_validation(self) -> dict[str, float]:
        """Rank 0 validates and every rank gets its metrics, or its error (whatever it is)."""
        valid = failure = None
        if self.world.main:
            try:
                valid = self.validate()
            except Exception as e:
                failure = e
        self.world.share_error(failure, kinds=(NonFiniteScores,))
        return self.world.share(valid)

    def check_finite_weights(self, epoch: int) -> None:
        """The loss guard sees each step's loss before its update: the last update of an epoch
        can still turn the weights NaN or infinite (a too large train.lr)."""
        bad = [name for name, p in [*self.encoder.named_parameters(),
                                    *(("method", p) for p in self.method.parameters())]
               if not bool(torch.isfinite(p).all())]
        if bad:
            raise TrainingError(f"epoch {epoch}: weights became NaN or infinite ({bad[0]}"
                                f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); "
                                f"lower train.lr or check the method's settings")

    def test(self) -> dict[str, float]:
        return self._evaluate(self.split.test_inputs(), self.split.test_targets)

    def _evaluate(self, inputs: list[np.ndarray], targets: np.ndarray) -> dict[str, float]:
        e = self.cfg.eval
        return evaluate_ranking(self.encoder, inputs, targets, self.cfg.encoder.max_len,
                                batch_size=self.cfg.train.eval_batch_size, device=self.device,
                                exclude_history=e.exclude_history, ks=e.ks)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainState:
        """Train until ``train.epochs`` or early stopping; leaves the best weights loaded."""
        cfg = self.cfg.train
        select = self.cfg.eval.select_metric
        st = self.state
        threads = torch.get_num_threads()
        self.method.setup(self.encoder)  # after resume() too: built from the restored weights
        # A numba kernel (RCL's similarity index) resets the OpenMP thread count torch uses:
        # train with the count set for the run (train.threads), whether the index was built or
        # read from the cache, since float sums differ with the number of threads.
        torch.set_num_threads(threads)
        while st.epoch < cfg.epochs and not st.stopped_early:
            epoch = st.epoch + 1
            started, cpu_started = time.perf_counter(), time.process_time()
            losses = self.train_epoch(epoch)
            self.world.check_in_sync(self.params)
            self.check_finite_weights(epoch)
            train_time = time.perf_counter() - started
            valid = self.shared_validation()
            elapsed = time.perf_counter() - started
            cpu_time = time.process_time() - cpu_started
            st.train_seconds += elapsed
            st.cpu_seconds += cpu_time
            st.epoch = epoch
            score = valid[select]
            improved = score > st.best_score
            if improved:
                st.best_score, st.best_epoch, st.bad_epochs = score, epoch, 0
                st.seconds_to_best = st.train_seconds
                if self.world.main:
                    save_torch_atomic(self.best_path, self.encoder.state_dict())
            else:
                st.bad_epochs += 1
            st.history.append({"epoch": epoch, "train_seconds": round(train_time, 3),
                               "epoch_seconds": round(elapsed, 3),
                               "cpu_seconds": round(cpu_time, 3), **losses,
                               "valid": valid})
            self.tracker.log_epoch(st.history[-1])  # train.track: mirror of metrics.json
            if self.show_progress:
                tqdm.write(f"epoch {epoch:3d}  loss {losses.get('loss', float('nan')):.4f}  "
                           f"valid {select} {score:.4f}  HR@10 {valid.get('HR@10', 0):.4f}  "
                           f"({train_time:.1f}s train, {elapsed - train_time:.1f}s eval)"
                           + ("  *" if improved else ""))
            if st.bad_epochs >= cfg.patience:
                st.stopped_early = True
            if self.world.main:
                self.save_checkpoint()
        self.tracker.close()
        self.load_best_on_rank_0()
        return st

    def load_best_on_rank_0(self) -> None:
        """Rank 0 loads ``best.pt``; its error, whatever it is, reaches every rank (each
        reports it, none waits for rank 0 in vain)."""
        failure = None
        if self.world.main and self.best_path.exists():
            try:
                self.load_best()
            except Exception as e:
                failure = e
        self.world.share_error(failure, kinds=(CorruptFile,))

    def load_best(self) -> None:
        """Load ``best.pt`` into the encoder (rank 0: the one that tests and writes files)."""
        best = load_torch(self.best_path)
        problem = state_dict_problem(best, self.encoder.state_dict())
        if problem is not None:
            raise CorruptFile(f"{self.best_path}: not this run's best weights ({problem}); "
                              f"remove it and checkpoint.pt to start the run again")
        self.encoder.load_state_dict(best)
