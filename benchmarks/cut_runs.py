"""Test metrics of runs that a time budget stopped before early stopping did.

A run folder of `rclrec train` holds `best.pt` (the best validation weights so far) and
`checkpoint.pt` (the epochs done) long before it writes `metrics.json`. This script ranks the
test users with `best.pt` and summarises each group of seeds (mean +- std), stating for every
run how many epochs it had trained and whether early stopping had ended it.

    python benchmarks/cut_runs.py --name loss_cut_quick_beauty DIR [DIR ...]

Each DIR is a folder of seed runs (benchmarks/.work/<name>/seed<S>).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from result_file import write_result

from rclrec.config import config_from_dict
from rclrec.eval.ranking import evaluate_ranking
from rclrec.models import build_encoder
from rclrec.run import load_split
from rclrec.train.checkpoint import load_torch


def test_of_best(run: Path) -> dict:
    cfg = config_from_dict(json.loads((run / "config.json").read_text()))
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    _, split = load_split(cfg)
    encoder = build_encoder(cfg.encoder, split.num_items)
    encoder.load_state_dict(load_torch(run / "best.pt"))
    state = load_torch(run / "checkpoint.pt")["state"]
    test = evaluate_ranking(encoder, split.test_inputs(), split.test_targets, cfg.encoder.max_len,
                            batch_size=cfg.train.eval_batch_size, ks=cfg.eval.ks,
                            exclude_history=cfg.eval.exclude_history)
    history = state["history"]
    return {"run": str(run), "seed": cfg.train.seed, "epochs_done": state["epoch"],
            "best_epoch": state["best_epoch"], "stopped_early": state["stopped_early"],
            "valid_NDCG@10_best": state["best_score"],
            "train_seconds_per_epoch": statistics.fmean(h["train_seconds"] for h in history),
            "valid_NDCG@10_by_epoch": [h["valid"]["NDCG@10"] for h in history],
            "test": test}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("groups", nargs="+", type=Path)
    args = p.parse_args()
    out = {}
    for group in args.groups:
        runs = [test_of_best(r) for r in sorted(group.glob("seed*"))
                if (r / "best.pt").exists() and (r / "checkpoint.pt").exists()]
        summary = {"runs": runs}
        for k in ("NDCG@10", "HR@10"):
            values = [r["test"][k] for r in runs]
            summary[k] = {"mean": statistics.fmean(values),
                          "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        out[group.name] = summary
        print(f"{group.name}: seeds {[r['seed'] for r in runs]}, epochs done "
              f"{[r['epochs_done'] for r in runs]} (best {[r['best_epoch'] for r in runs]}), "
              f"test NDCG@10 {summary['NDCG@10']['mean']:.4f} +- {summary['NDCG@10']['std']:.4f}"
              f", HR@10 {summary['HR@10']['mean']:.4f} +- {summary['HR@10']['std']:.4f}")
    write_result(args.name, {"groups": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
