"""Data-parallel speed on CPU: a SASRec epoch with 1 process and with 2 gloo processes.

Three ways to spend two cores on the same epoch, at the same global batch (so the same number
of optimizer steps): one process with one thread, one process with two threads, and two
torchrun processes (gloo) with one thread each and half the batch per process. Each is a fresh
subprocess; they run in alternated rounds so a load that comes and goes hits them alike, and
the script reports each one's median epoch time and its speed-up over one process with one
thread, all measured in this one run.

    python benchmarks/ddp_scaling.py --dataset beauty --rounds 2

A worker (``--worker``) trains ``--epochs`` epochs (no validation) and writes the wall time of
its last one; under torchrun every rank times it and rank 0 writes the slowest rank's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from result_file import write_result

from rclrec.config import load_config
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.provenance import peak_rss_mb
from rclrec.run import build_instances, load_split, resolve, seed_everything
from rclrec.train.distributed import close_world, init_world
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SETUPS = (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
          ("2 processes x 1 thread (gloo)", 2, 1))


def worker(args: argparse.Namespace) -> None:
    world, _ = init_world("cpu")
    torch.set_num_threads(args.threads)
    overrides = {"data.dataset": args.dataset, "method": args.method,
                 "train.batch_size": str(args.global_batch // world.size),
                 "train.threads": str(args.threads),
                 **dict(o.split("=", 1) for o in args.overrides)}
    if args.max_steps:
        overrides["train.max_steps"] = str(args.max_steps)
    cfg = resolve(load_config(overrides=overrides))
    seed_everything(cfg.train.seed)
    _, split = load_split(cfg)
    instances = build_instances(cfg, split)
    device = torch.device("cpu")
    method = method_class(cfg.method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens).to(device)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(cfg, split, instances, encoder, method, device, Path(out_dir),
                          show_progress=False, world=world)
        method.setup(encoder)
        torch.set_num_threads(args.threads)
        for epoch in range(1, args.epochs + 1):
            world.share(None)  # a barrier: every rank starts the epoch together
            started = time.perf_counter()
            trainer.train_epoch(epoch)
            seconds = time.perf_counter() - started
        world.check_in_sync(trainer.params)
    slowest = max(s for s in all_ranks(world, seconds))
    if world.main:
        Path(args.result).write_text(json.dumps({"seconds": slowest, "ranks": world.size,
                                                 "threads": args.threads,
                                                 "peak_rss_mb": peak_rss_mb()}))
    close_world()


def all_ranks(world, value: float) -> list[float]:
    if world.size == 1:
        return [value]
    values = [None] * world.size
    torch.distributed.all_gather_object(values, value)
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_setup(processes: int, threads: int, args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        worker_args = [str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
                       "--dataset", args.dataset, "--method", args.method,
                       "--global-batch", str(args.global_batch), "--epochs", str(args.epochs),
                       "--result", result.name,
                       *(["--max-steps", str(args.max_steps)] if args.max_steps else []),
                       *[a for o in args.overrides for a in ("--set", o)]]
        launcher = ([sys.executable] if processes == 1 else
                    [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                     str(processes), "--master-addr", "127.0.0.1", "--master-port",
                     str(free_port())])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run([*launcher, *worker_args], capture_output=True, text=True,
                              env=env)
        if proc.returncode != 0:
            sys.exit(f"ddp_scaling: {processes} process(es) x {threads} thread(s) failed:\n"
                     f"{proc.stderr[-3000:]}")
        return json.loads(Path(result.name).read_text())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--method", default="sasrec")
    p.add_argument("--global-batch", type=int, default=256,
                   help="instances per optimizer step, split over the processes")
    p.add_argument("--epochs", type=int, default=2, help="the last one is timed")
    p.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (tests)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    seconds = {label: [] for label, _, _ in SETUPS}
    for r in range(args.rounds):
        for label, processes, threads in SETUPS:
            seconds[label].append(run_setup(processes, threads, args)["seconds"])
            print(f"round {r + 1}: {label}: {seconds[label][-1]:.1f} s", flush=True)
    base = statistics.median(seconds[SETUPS[0][0]])
    rows = []
    for label, processes, threads in SETUPS:
        median = statistics.median(seconds[label])
        rows.append({"setup": label, "processes": processes, "threads_per_process": threads,
                     "epoch_seconds_by_round": seconds[label], "epoch_seconds": median,
                     "speedup_over_1x1": base / median})
        print(f"{label:>30}: {median:7.1f} s per epoch, speed-up x{base / median:.2f}")
    write_result(args.name or f"ddp_scaling_{args.dataset}",
                 {"dataset": args.dataset, "method": args.method,
                  "global_batch": args.global_batch, "timed_epoch": args.epochs,
                  "max_steps": args.max_steps or None, "rounds": args.rounds, "rows": rows,
                  "cpus": os.cpu_count(), "load_average": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
