"""Seconds of one full-ranking validation pass (every user against every item), this tree's
evaluate_ranking against another tree's, alternated in one process.

    git worktree add /tmp/old 234be05
    python benchmarks/ranking_timing.py --dataset beauty --old /tmp/old --threads 2

Both rank with the same (untrained) encoder; the metrics must agree exactly. Wall seconds and
the process's CPU seconds are both reported: on a machine loaded by other jobs, only the second
(with ``--threads 1``) measures the work.
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
from tree_modules import load_module

from rclrec.config import load_config
from rclrec.data.split import leave_one_out
from rclrec.eval import ranking
from rclrec.eval.ranking import evaluate_ranking
from rclrec.models import build_encoder
from rclrec.run import load_data, resolve


def load_old_ranking(tree: Path):
    """The other tree's evaluate_ranking, with the other tree's versions of the rclrec.eval
    modules it imports (its counting kernel, ...), not this tree's; the rest of rclrec (the
    encoder, the data) is this tree's."""
    eval_dir = tree / "rclrec" / "eval"
    # ranking last: the others are in place when it imports them.
    stems = sorted((p.stem for p in eval_dir.glob("*.py") if p.stem not in ("__init__", "saved")),
                   key=lambda stem: stem == "ranking")
    own = {f"rclrec.eval.{stem}": sys.modules.get(f"rclrec.eval.{stem}") for stem in stems}
    try:
        for stem in stems:
            sys.modules[f"rclrec.eval.{stem}"] = load_module(f"old_rclrec.eval.{stem}",
                                                             eval_dir / f"{stem}.py")
        return sys.modules["rclrec.eval.ranking"].evaluate_ranking
    finally:
        for name, module in own.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def untrained_sasrec(dataset: str):
    """(settings, leave-one-out split, seeded untrained encoder) of the default SASRec."""
    cfg = resolve(load_config(overrides={"data.dataset": dataset}))
    torch.manual_seed(0)
    split = leave_one_out(load_data(cfg))
    return cfg, split, build_encoder(cfg.encoder, split.num_items)


def serial(evaluate):
    """``evaluate`` with this tree's threaded CPU pass switched off during the call."""
    def run(*args, **kwargs):
        ranking.THREADED_CPU_PASS = False
        try:
            return evaluate(*args, **kwargs)
        finally:
            ranking.THREADED_CPU_PASS = True
    return run


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--old", type=Path, required=True, help="source tree of the other version")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--name", default=None)
    p.add_argument("--serial", action="store_true",
                   help="add this tree with its pieces encoded and ranked one after another on "
                        "all threads (ranking.THREADED_CPU_PASS off): what the threads bring")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg, split, encoder = untrained_sasrec(args.dataset)
    inputs, targets = split.valid_inputs(), split.valid_targets
    versions = {"old": load_old_ranking(args.old), "new": evaluate_ranking}
    if args.serial:
        versions["new_serial"] = serial(evaluate_ranking)
    seconds: dict[str, list[float]] = {k: [] for k in versions}
    cpu_seconds: dict[str, list[float]] = {k: [] for k in versions}
    metrics, ranks = {}, {}
    for round_no in range(args.rounds):
        # The versions take turns at going first.
        names = list(versions)
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            start, cpu = time.perf_counter(), time.process_time()
            metrics[name], ranks[name] = versions[name](
                encoder, inputs, targets, cfg.encoder.max_len,
                batch_size=cfg.train.eval_batch_size, return_ranks=True)
            seconds[name].append(time.perf_counter() - start)
            cpu_seconds[name].append(time.process_time() - cpu)
    for name in versions:
        if metrics[name] != metrics["old"] or not np.array_equal(ranks[name], ranks["old"]):
            raise SystemExit(f"{name}: metrics or ranks differ from old: {metrics}")
    ratios = {}
    for unit, measured in (("s", seconds), ("CPU s", cpu_seconds)):
        for name, values in measured.items():
            print(f"{name}: {statistics.median(values):.2f} {unit} "
                  f"[{min(values):.2f}-{max(values):.2f}] for {len(inputs)} users")
        r = [o / n for o, n in zip(measured["old"], measured["new"], strict=True)]
        ratios[unit] = r
        print(f"new is x{statistics.median(r):.2f} faster than old in {unit} (median "
              f"of {args.rounds} rounds, range {min(r):.2f}-{max(r):.2f})")
        if "new_serial" in measured:
            r = [o / n for o, n in zip(measured["new_serial"], measured["new"], strict=True)]
            ratios[f"{unit} against serial"] = r
            print(f"new is x{statistics.median(r):.2f} faster than new_serial in {unit} "
                  f"(median of {args.rounds} rounds, range {min(r):.2f}-{max(r):.2f})")
    print("metrics and every user's rank identical")
    out = {"dataset": args.dataset, "users": len(inputs), "threads": args.threads,
           "seconds": seconds, "cpu_seconds": cpu_seconds,
           "speed_up_median": statistics.median(ratios["s"]),
           "cpu_speed_up_median": statistics.median(ratios["CPU s"]),
           "ratios": ratios,
           "old_tree": str(args.old)}
    write_result(args.name or f"ranking_timing_{args.dataset}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
