"""Seconds per training step of SASRec with each recommendation loss, side by side in one process.

The same batches are trained with every loss, in alternated rounds (loss A, B, C, then A, B, C
again; each round takes the next batches of one shuffled epoch), so a load that comes and goes
hits them all alike; the clock is process CPU time (one thread), which the other jobs of a
shared machine inflate far less than wall time. Each loss is reported as its mean CPU seconds
per step over all timed steps (the same batches for every loss), scaled to a whole epoch, and
as a ratio to the first loss, overall and per round.

    python benchmarks/loss_timing.py --dataset beauty --losses ce sampled:128 sampled:1024 gbce:256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from result_file import write_result

from rclrec.config import load_config
from rclrec.data.batches import batch_order
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.provenance import peak_rss_mb
from rclrec.run import build_instances, load_split, resolve
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def loss_settings(spec: str) -> dict[str, str]:
    """``ce``, ``sampled:128``, ``gbce:256`` -> train.loss (and train.negatives)."""
    kind, _, negatives = spec.partition(":")
    return {"train.loss": kind} | ({"train.negatives": negatives} if negatives else {})


def build_trainer(dataset: str, spec: str, overrides: dict[str, str]) -> Trainer:
    cfg = resolve(load_config(overrides={"data.dataset": dataset, **overrides,
                                         **loss_settings(spec)}))
    torch.manual_seed(0)
    _, split = load_split(cfg)
    instances = build_instances(cfg, split)
    device = torch.device("cpu")
    method = method_class(cfg.method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens).to(device)
    trainer = Trainer(cfg, split, instances, encoder, method, device,
                      ROOT / "benchmarks" / ".work", show_progress=False)
    method.setup(encoder)
    return trainer


def train_steps(trainer: Trainer, batches: list[np.ndarray]) -> None:
    for index in batches:
        loss, _ = trainer.loss_step(trainer.make_batch(index))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--losses", nargs="+", default=["ce", "sampled:128", "sampled:1024",
                                                   "gbce:256"])
    p.add_argument("--steps", type=int, default=10, help="timed steps per loss and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(o.split("=", 1) for o in args.overrides)
    trainers = {spec: build_trainer(args.dataset, spec, overrides) for spec in args.losses}
    first = trainers[args.losses[0]]
    batches = batch_order(first.lengths, first.cfg.train.batch_size, np.random.default_rng(0))
    for trainer in trainers.values():  # warm-up: allocations, first-call dispatch
        train_steps(trainer, batches[:1])
    cpu = {spec: [] for spec in args.losses}
    wall = {spec: [] for spec in args.losses}
    for r in range(args.rounds):
        chosen = batches[1 + r * args.steps: 1 + (r + 1) * args.steps]
        for spec, trainer in trainers.items():
            c, w = time.process_time(), time.perf_counter()
            train_steps(trainer, chosen)
            cpu[spec].append((time.process_time() - c) / len(chosen))
            wall[spec].append((time.perf_counter() - w) / len(chosen))
    first = cpu[args.losses[0]]
    base = statistics.fmean(first)
    rows = []
    for spec in args.losses:
        per_step = statistics.fmean(cpu[spec])
        by_round = [c / b for c, b in zip(cpu[spec], first, strict=True)]
        rows.append({"loss": spec, "cpu_seconds_per_step": per_step,
                     "cpu_seconds_per_epoch": per_step * len(batches),
                     "relative_to_first": per_step / base,
                     "relative_to_first_by_round": by_round,
                     "cpu_seconds_per_step_by_round": cpu[spec],
                     "wall_seconds_per_step_by_round": wall[spec]})
        print(f"{spec:>14}: {per_step * len(batches):7.1f} CPU s/epoch ({len(batches)} steps), "
              f"x{per_step / base:.2f} (by round {', '.join(f'x{r:.2f}' for r in by_round)})")
    write_result(args.name or f"loss_timing_{args.dataset}",
                 {"dataset": args.dataset, "threads": args.threads, "steps": args.steps,
                  "rounds": args.rounds, "steps_per_epoch": len(batches), "rows": rows,
                  "peak_rss_mb": peak_rss_mb()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
