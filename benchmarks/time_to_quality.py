"""SASRec, then RCL, each trained to early stopping in its own process; RCL's time to SASRec's
best validation score against SASRec's own (issue 15: "RCL not slower than SASRec to equal
quality", and a converged RCL run under 15 minutes on 2 cores).

Times come from each run's metrics.json (cumulative ``epoch_seconds``: training plus
validation, the data, index and test ranking left out) and, for the whole process, the wall
clock and the CPU time of the child. The runs are fresh (their folders are emptied first).

    python benchmarks/time_to_quality.py --name time_to_quality_beauty -- \\
        --dataset beauty --config configs/quick.toml --set train.patience=10 \\
        --set train.epochs=200 --set train.threads=2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from result_file import write_result

ROOT = Path(__file__).resolve().parent.parent
METRIC = "NDCG@10"


def train(method: str, out: Path, train_args: list[str]) -> dict[str, Any]:
    """One `rclrec train` process; its metrics plus the process's wall and CPU seconds."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rclrec", "train", "--method", method, "--out", str(out),
                    *train_args], check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"metrics": metrics, "process_wall_seconds": round(wall, 2),
            "process_cpu_seconds": round(cpu, 2)}


def seconds_to_reach(history: list[dict[str, Any]], score: float) -> tuple[int, float] | None:
    """(epoch, cumulative epoch seconds) of the first epoch whose validation score >= score."""
    total = 0.0
    for h in history:
        total += h["epoch_seconds"]
        if h["valid"][METRIC] >= score:
            return h["epoch"], total
    return None


def summary(method: str, run: dict[str, Any]) -> dict[str, Any]:
    m = run["metrics"]
    history = m["history"]
    return {"method": method, "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"],
            "best_valid": m["valid"][METRIC], "test": m["test"],
            "seconds_to_best": m["seconds_to_best"], "train_seconds": m["train_seconds"],
            "cpu_seconds": m.get("cpu_seconds"),
            "median_epoch_train_seconds": sorted(h["train_seconds"] for h in history)[
                len(history) // 2],
            "process_wall_seconds": run["process_wall_seconds"],
            "process_cpu_seconds": run["process_cpu_seconds"],
            "machine": m.get("machine"), "seed": m["seed"], "git_commit": m.get("git_commit")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="benchmarks/results/<name>.json")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "time_to_quality"),
                   help="run folders (emptied first)")
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="after --: arguments of `rclrec train` for both runs")
    args = p.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    work = Path(args.work)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    runs = {m: train(m, work / m, train_args) for m in ("sasrec", "rcl")}
    sasrec, rcl = (summary(m, runs[m]) for m in ("sasrec", "rcl"))
    reached = seconds_to_reach(runs["rcl"]["metrics"]["history"], sasrec["best_valid"])
    out = {"train_args": train_args, "sasrec": sasrec, "rcl": rcl,
           "rcl_reaches_sasrec_best": None if reached is None
           else {"epoch": reached[0], "seconds": round(reached[1], 2),
                 "x_sasrec_seconds_to_best": round(reached[1] / sasrec["seconds_to_best"], 3)}}
    for s in (sasrec, rcl):
        print(f"{s['method']}: {s['epochs_run']} epochs (best {s['best_epoch']}, valid "
              f"{METRIC} {s['best_valid']:.4f}), {s['seconds_to_best']:.0f} s to its best, "
              f"{s['train_seconds']:.0f} s of epochs, process {s['process_wall_seconds']:.0f} s "
              f"wall / {s['process_cpu_seconds']:.0f} s CPU; test {METRIC} {s['test'][METRIC]:.4f}")
    if reached is None:
        print(f"RCL never reached SASRec's best validation {METRIC}")
    else:
        r = out["rcl_reaches_sasrec_best"]
        print(f"RCL reached SASRec's best at epoch {r['epoch']} after {r['seconds']:.0f} s: "
              f"x{r['x_sasrec_seconds_to_best']:.2f} SASRec's time to it")
    write_result(args.name, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
