"""One training epoch and one validation pass of several code versions, alternated in one run.

The machine this project runs on is shared, so a speed-up is only believable as a ratio of
runs that took turns under the same load. Each variant is a source tree (e.g. a `git worktree`
of an older commit) plus settings; every round runs each variant once, in a fresh process,
in turn (with ``--steps``, the first steps of an epoch, scaled to the whole epoch), and
the summary gives each variant's median and spread and its median ratio to the
first variant, in wall-clock seconds and in the process's CPU seconds (with one thread on a
loaded machine, CPU seconds count the work done and wait for no one). The epoch's system
seconds are printed too: a large share means page faults of freshly mapped big buffers.

    git worktree add /tmp/old 234be05
    python benchmarks/side_by_side_epoch.py --variant old=/tmp/old --variant new=. \\
        --variant new_bf16=.:train.precision=bf16 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from result_file import write_result

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the variant's tree: only APIs that every compared version has.
WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
from pathlib import Path
from rclrec.config import load_config
from rclrec.data.batches import batch_order
from rclrec.data.split import leave_one_out
from rclrec.run import build_instances, load_data, resolve
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.train.trainer import Trainer

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
cfg = resolve(load_config(overrides={"method": args["method"], "data.dataset": args["dataset"],
                                     **args["overrides"]}))
split = leave_one_out(load_data(cfg))
instances = build_instances(cfg, split)
device = torch.device("cpu")
method = method_class(cfg.method)(cfg, split, instances, device)
encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens).to(device)
trainer = Trainer(cfg, split, instances, encoder, method, device, Path(args["work"]),
                  show_progress=False)
method.setup(encoder)
steps_per_epoch = len(batch_order(trainer.lengths, cfg.train.batch_size,
                                  np.random.default_rng(0)))
steps = min(cfg.train.max_steps or steps_per_epoch, steps_per_epoch)
started, cpu = time.perf_counter(), time.process_time()
sys_time = resource.getrusage(resource.RUSAGE_SELF).ru_stime
losses = trainer.train_epoch(1)
train_sys = (resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_time) * steps_per_epoch / steps
train_seconds = (time.perf_counter() - started) * steps_per_epoch / steps
train_cpu = (time.process_time() - cpu) * steps_per_epoch / steps
started, cpu = time.perf_counter(), time.process_time()
valid = {"NDCG@10": float("nan")} if args["skip_validation"] else trainer.validate()
print(json.dumps({"train_seconds": train_seconds, "valid_seconds": time.perf_counter() - started,
                  "train_cpu_seconds": train_cpu, "valid_cpu_seconds": time.process_time() - cpu,
                  "train_sys_seconds": train_sys,
                  "loss": losses["loss"], "valid_ndcg10": valid["NDCG@10"]}))
"""


def parse_variant(text: str) -> tuple[str, Path, dict[str, str]]:
    """``label=tree[:key=value[:key=value...]]``."""
    label, rest = text.split("=", 1)
    tree, *settings = rest.split(":")
    return label, Path(tree).resolve(), dict(s.split("=", 1) for s in settings)


def run_variant(tree: Path, job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(job)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def git_commit(tree: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                         text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--variant", action="append", required=True,
                   help="label=tree[:key=value...]; the first is the reference")
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--method", default="sasrec")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None,
                   help="time this many steps and scale to an epoch (default: the whole epoch)")
    p.add_argument("--skip-validation", action="store_true",
                   help="time the training epoch only (validation then reads as ~0 s)")
    p.add_argument("--name", default=None)
    args = p.parse_args()
    limit = {} if args.steps is None else {"train.max_steps": str(args.steps)}
    variants = [parse_variant(v) for v in args.variant]
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
    for round_no in range(1, args.rounds + 1):
        for label, tree, overrides in variants:
            job = {"dataset": args.dataset, "method": args.method, "threads": args.threads,
                   "skip_validation": args.skip_validation,
                   "overrides": {**limit, **overrides}, "work": str(ROOT / "benchmarks" / ".work")}
            row = run_variant(tree, job)
            runs[label].append(row)
            print(f"round {round_no} {label:>10}: epoch {row['train_seconds']:6.1f} s "
                  f"({row['train_cpu_seconds']:.1f} CPU s), validation "
                  f"{row['valid_seconds']:5.2f} s ({row['valid_cpu_seconds']:.2f} CPU s), "
                  f"epoch sys {row['train_sys_seconds']:.2f} s, "
                  f"loss {row['loss']:.4f}", flush=True)
    # speed_up: the median over rounds of (reference time / this variant's time) in a round.
    summary = {}
    first = variants[0][0]
    for label, tree, overrides in variants:
        summary[label] = {"tree": str(tree), "commit": git_commit(tree), "settings": overrides}
        for key in ("train_seconds", "valid_seconds", "train_cpu_seconds", "valid_cpu_seconds"):
            values = [r[key] for r in runs[label]]
            ratios = [a[key] / b[key] for a, b in zip(runs[first], runs[label], strict=True)]
            summary[label][key] = {"median": statistics.median(values), "min": min(values),
                                   "max": max(values),
                                   "speed_up": statistics.median(ratios)}
    for label, s in summary.items():
        for kind in ("", "_cpu"):
            t, v = s[f"train{kind}_seconds"], s[f"valid{kind}_seconds"]
            print(f"{label:>10} ({s['commit']}) {'CPU' if kind else 'wall'}: epoch "
                  f"{t['median']:.1f} s [{t['min']:.1f}-{t['max']:.1f}], x{t['speed_up']:.2f} "
                  f"faster than {first}; validation {v['median']:.2f} s "
                  f"[{v['min']:.2f}-{v['max']:.2f}], x{v['speed_up']:.2f}")
    out = {"dataset": args.dataset, "method": args.method, "threads": args.threads,
           "summary": summary, "runs": runs}
    write_result(args.name or "side_by_side_epoch", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
