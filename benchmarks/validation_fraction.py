"""A validation pass as a fraction of a training epoch, old and new ranking code, one process.

    git worktree add --detach /tmp/old ff6f403
    python benchmarks/validation_fraction.py --old /tmp/old --epochs 3 --threads 2

Issue 15 asks that the validation pass run after every epoch cost at most a tenth of that
epoch. One process trains SASRec (this tree's trainer) for ``--epochs`` epochs; after each
epoch it ranks the validation users with this tree's ``evaluate_ranking`` and with the other
tree's (its own ``rclrec.eval`` modules, as in ranking_timing.py), taking turns at going first,
and checks that every user's rank is identical. Epochs and passes share one process and one
load, so their ratio is the one the goal names. A pass before the first epoch (warm-up: numba's
cached kernels loaded, buffers touched) is timed but left out of the ratio, as every later
epoch's pass is warm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from loss_timing import build_trainer
from ranking_timing import load_old_ranking
from result_file import write_result

from rclrec.eval.ranking import evaluate_ranking


def timed(fn, *args, **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--old", type=Path, required=True, help="source tree of the other version")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    trainer = build_trainer(args.dataset, "ce", {})  # SASRec, the default settings
    torch.set_num_threads(args.threads)  # numba may have reset it (see Trainer.fit)
    cfg, split, encoder, device = trainer.cfg, trainer.split, trainer.encoder, trainer.device
    versions = {"old": load_old_ranking(args.old), "new": evaluate_ranking}
    inputs, targets = split.valid_inputs(), split.valid_targets

    def validate(name: str):
        return versions[name](encoder, inputs, targets, cfg.encoder.max_len,
                              batch_size=cfg.train.eval_batch_size, device=device,
                              exclude_history=cfg.eval.exclude_history, ks=cfg.eval.ks,
                              return_ranks=True)

    rows = []
    warm = {name: timed(validate, name)[1] for name in versions}
    print(f"warm-up pass (left out): old {warm['old']:.2f} s, new {warm['new']:.2f} s")
    for epoch in range(1, args.epochs + 1):
        _, epoch_s, epoch_cpu = timed(trainer.train_epoch, epoch)
        row = {"epoch": epoch, "epoch_seconds": epoch_s, "epoch_cpu_seconds": epoch_cpu}
        ranks = {}
        for name in (("old", "new") if epoch % 2 else ("new", "old")):
            (_, ranks[name]), row[f"{name}_seconds"], row[f"{name}_cpu_seconds"] = timed(
                validate, name)
        if not np.array_equal(ranks["old"], ranks["new"]):
            raise SystemExit(f"epoch {epoch}: the ranks differ between old and new")
        rows.append(row)
        print(f"epoch {epoch}: {epoch_s:.2f} s ({epoch_cpu:.2f} CPU s); validation old "
              f"{row['old_seconds']:.2f} s ({row['old_cpu_seconds']:.2f} CPU s), new "
              f"{row['new_seconds']:.2f} s ({row['new_cpu_seconds']:.2f} CPU s); ranks "
              f"identical", flush=True)
    summary = {}
    for name in versions:
        summary[name] = {}
        for unit, key in (("s", ""), ("CPU s", "_cpu")):
            fractions = [r[f"{name}{key}_seconds"] / r[f"epoch{key}_seconds"] for r in rows]
            seconds = statistics.median(r[f"{name}{key}_seconds"] for r in rows)
            summary[name][unit] = {"median_seconds": seconds,
                                   "median_fraction": statistics.median(fractions),
                                   "fractions": fractions}
            print(f"{name}: validation {seconds:.2f} {unit}, "
                  f"{statistics.median(fractions):.3f} of an epoch in {unit} (median of "
                  f"{len(rows)}; range {min(fractions):.3f}-{max(fractions):.3f})")
    write_result(args.name or f"validation_fraction_{args.dataset}",
                 {"dataset": args.dataset, "threads": args.threads, "old_tree": str(args.old),
                  "warm_up_seconds": warm, "epochs": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
