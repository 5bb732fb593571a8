"""Where a training step and a validation pass spend their time, and how far an epoch is from
the arithmetic floor (its matrix-product FLOPs at this machine's measured peak matmul rate).

    python benchmarks/profile_step.py --dataset beauty --threads 2

The floor counts, for every batch of one epoch (B rows trimmed to length L, P positions with a
target; d = hidden, f = feed-forward width, N = items, K = blocks):

    encoder  3 x K x [2 B L (3d^2 + d^2 + 2 d f) + 4 B L^2 d]   (forward, backward = 2 x forward)
    CE       6 P N d   (scores s E^T, then d s = G E and d E = G^T s)

Everything else (softmax, LayerNorm, Adam, batching) is left out, so the floor is a bound no
implementation beats at this peak rate. Peak rates come from square matmuls in the same
process, so the multiple of the floor is a ratio under one load; it is given in wall seconds
and in CPU seconds (the process's, which a loaded machine inflates much less).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from result_file import write_result
from torch.profiler import ProfilerActivity, profile

from rclrec.config import load_config
from rclrec.data.batches import batch_order, trim_padding
from rclrec.data.dataset import PAD
from rclrec.data.split import leave_one_out
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def peak_matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 7
                     ) -> tuple[float, float]:
    """FLOP per wall second and per CPU second of the fastest of ``repeats`` square matmuls
    (on a loaded machine the CPU-second rate is the one that load does not slow down)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return 2 * size**3 / wall, 2 * size**3 / cpu


def epoch_flops(cfg, instances, batches: list[np.ndarray], num_items: int) -> dict[str, float]:
    d, f, blocks = cfg.encoder.hidden_dim, cfg.encoder.inner_dim, cfg.encoder.num_blocks
    encoder = ce = 0.0
    for index in batches:
        inputs, targets = trim_padding(instances.inputs[index], instances.targets[index])
        b, length = inputs.shape
        positions = int((targets != PAD).sum())
        forward = blocks * (2 * b * length * (4 * d * d + 2 * d * f) + 4 * b * length**2 * d)
        encoder += 3 * forward
        ce += 6 * positions * num_items * d
    return {"encoder": encoder, "ce": ce, "total": encoder + ce}


PHASES = ("batching", "encoder forward", "CE value + gradients", "backward", "optimizer",
          "loss read-out")


def timed_steps(trainer: Trainer, batches: list[np.ndarray], clock=time.perf_counter
                ) -> dict[str, list[float]]:
    """The trainer's step, phase by phase (the CPU runs synchronously, so the clock is exact).

    ``loss_step`` is split here into its parts; the CE's forward includes its gradients, so
    ``backward`` is the encoder's. ``clock``: wall (default) or ``time.process_time``."""
    phases: dict[str, list[float]] = defaultdict(list)
    cfg = trainer.cfg.train
    for index in batches:
        marks = [clock()]
        batch = trainer.make_batch(index)
        marks.append(clock())
        with trainer.autocast():
            hidden = trainer.encoder(batch.inputs)
            marks.append(clock())
            states, targets = select_target_positions(hidden, batch.host_targets)
            loss = recommendation_loss(cfg.loss, states, targets, trainer.encoder.item_table)
        marks.append(clock())
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(clock())
        trainer.optimizer.step()
        marks.append(clock())
        float(loss.detach())  # what a per-step read-out costs (on a GPU: a synchronisation)
        marks.append(clock())
        for name, a, b in zip(PHASES, marks, marks[1:], strict=False):
            phases[name].append(b - a)
    return phases


def parts_over_floor(trainer: Trainer, cfg, instances, batches: list[np.ndarray],
                     num_items: int, peak_per_cpu_second: float) -> dict[str, float]:
    """The CE and the encoder (forward + backward) each as a multiple of its own float32 floor,
    in CPU seconds summed over ``batches`` (which part of the distance to the floor is whose)."""
    phases = timed_steps(trainer, batches, clock=time.process_time)
    flops = epoch_flops(cfg, instances, batches, num_items)
    ce = sum(phases["CE value + gradients"])
    encoder = sum(phases["encoder forward"]) + sum(phases["backward"])
    return {"ce": ce / (flops["ce"] / peak_per_cpu_second),
            "encoder": encoder / (flops["encoder"] / peak_per_cpu_second)}


def top_ops(fn, rows: int = 12) -> list[dict]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_seconds": e.self_cpu_time_total / 1e6,
             "share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:rows]]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="steps in the phase breakdown")
    p.add_argument("--epoch-steps", type=int, default=None,
                   help="time this many steps of the epoch and scale (default: all of them)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(o.split("=", 1) for o in args.overrides)
    if args.epoch_steps:
        overrides["train.max_steps"] = str(args.epoch_steps)
    cfg = resolve(load_config(overrides={"method": "sasrec", "data.dataset": args.dataset,
                                         **overrides}))
    torch.manual_seed(0)
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    device = torch.device("cpu")
    method = method_class("sasrec")(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens)
    trainer = Trainer(cfg, split, instances, encoder, method, device,
                      ROOT / "benchmarks" / ".work", show_progress=False)
    batches = batch_order(trainer.lengths, cfg.train.batch_size, np.random.default_rng(0))
    flops = epoch_flops(cfg, instances, batches, split.num_items)

    rates = {k: peak_matmul_rate(v) for k, v in DTYPES.items()}
    timed_steps(trainer, batches[:1])  # warm-up
    phases = timed_steps(trainer, batches[1:args.steps + 1])
    step_ops = top_ops(lambda: timed_steps(trainer, batches[1:4]))
    timed = min(args.epoch_steps or len(batches), len(batches))
    started, cpu = time.perf_counter(), time.process_time()
    trainer.train_epoch(1)
    epoch_seconds = (time.perf_counter() - started) * len(batches) / timed
    epoch_cpu = (time.process_time() - cpu) * len(batches) / timed
    started, cpu = time.perf_counter(), time.process_time()
    trainer.validate()
    valid_seconds = time.perf_counter() - started
    valid_cpu = time.process_time() - cpu
    valid_ops = top_ops(trainer.validate)
    after = {k: peak_matmul_rate(v) for k, v in DTYPES.items()}  # the load changes meanwhile
    peak = {k: max(rates[k][0], after[k][0]) for k in DTYPES}
    peak_cpu = {k: max(rates[k][1], after[k][1]) for k in DTYPES}
    floor = {k: flops["total"] / v for k, v in peak.items()}
    floor_cpu = {k: flops["total"] / v for k, v in peak_cpu.items()}
    parts = parts_over_floor(trainer, cfg, instances, batches[1:args.steps + 1],
                             split.num_items, peak_cpu["float32"])
    step_total = sum(statistics.median(v) for v in phases.values())
    print(f"{args.dataset}: {len(batches)} steps per epoch, {split.num_items} items, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"FLOPs per epoch: encoder {flops['encoder']:.3g} + CE {flops['ce']:.3g} = "
          f"{flops['total']:.3g}")
    print(f"peak matmul: float32 {peak['float32'] / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16'] / 1e9:.0f} GFLOP/s")
    print(f"floor: {floor['float32']:.2f} s (float32), {floor['bfloat16']:.2f} s (bfloat16)")
    print(f"measured epoch: {epoch_seconds:.2f} s = {epoch_seconds / floor['float32']:.1f}x the "
          f"float32 floor, {epoch_seconds / floor['bfloat16']:.1f}x the bfloat16 floor; "
          f"validation {valid_seconds:.2f} s = {valid_seconds / epoch_seconds:.2f} of the epoch")
    print(f"per CPU second: peak float32 {peak_cpu['float32'] / 1e9:.0f} GFLOP, bfloat16 "
          f"{peak_cpu['bfloat16'] / 1e9:.0f} GFLOP; floor {floor_cpu['float32']:.2f} CPU s "
          f"(float32), {floor_cpu['bfloat16']:.2f} CPU s (bfloat16)")
    print(f"measured epoch: {epoch_cpu:.2f} CPU s = {epoch_cpu / floor_cpu['float32']:.1f}x the "
          f"float32 floor, {epoch_cpu / floor_cpu['bfloat16']:.1f}x the bfloat16 floor; "
          f"validation {valid_cpu:.2f} CPU s = {valid_cpu / epoch_cpu:.2f} of the epoch")
    print(f"against their own float32 floors (CPU s, {args.steps} steps): CE "
          f"{parts['ce']:.1f}x, encoder forward + backward {parts['encoder']:.1f}x")
    print(f"one step ({args.steps} steps, median per phase; total {step_total * 1e3:.0f} ms):")
    for name, values in phases.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med * 1e3:7.1f} ms  {med / step_total:5.1%}  "
              f"[{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}]")
    for title, ops in (("training steps", step_ops), ("validation pass", valid_ops)):
        print(f"top ops, {title} (self CPU time):")
        for o in ops:
            print(f"  {o['op']:<40} {o['self_seconds']:7.3f} s  {o['share']:5.1%}  "
                  f"x{o['calls']}")
    out = {"dataset": args.dataset, "threads": args.threads, "overrides": overrides,
           "steps_per_epoch": len(batches), "flops": flops, "peak_flops": peak, "floor": floor,
           "epoch_seconds": epoch_seconds, "validation_seconds": valid_seconds,
           "epoch_cpu_seconds": epoch_cpu, "validation_cpu_seconds": valid_cpu,
           "peak_flops_per_cpu_second": peak_cpu, "floor_cpu_seconds": floor_cpu,
           "epoch_cpu_over_floor": {k: epoch_cpu / v for k, v in floor_cpu.items()},
           "epoch_steps_timed": timed,
           "epoch_over_floor": {k: epoch_seconds / v for k, v in floor.items()},
           "cpu_over_own_floor": parts,
           "phases_ms": {k: {"median": statistics.median(v) * 1e3, "min": min(v) * 1e3,
                             "max": max(v) * 1e3} for k, v in phases.items()},
           "step_ops": step_ops, "validation_ops": valid_ops}
    write_result(args.name or f"profile_step_{args.dataset}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
