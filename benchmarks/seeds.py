"""Train one configuration over several seeds and summarise mean and spread.

Each seed is a resumable `rclrec train` run under benchmarks/.work/<name>/seed<S>; the summary
(small JSON, committed) goes to benchmarks/results/<name>.json. A seed whose run folder is gone
(they are not committed) but which the committed summary holds, trained with the same train
arguments, is taken from the summary instead of being trained again.

    python benchmarks/seeds.py --name sasrec_beauty --seeds 0 1 2 -- --dataset beauty
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from rclrec.files import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR@10")


def summarise(runs: list[dict]) -> dict:
    out = {"seeds": [r["seed"] for r in runs], "runs": []}
    for r in runs:
        out["runs"].append({k: r[k] for k in ("seed", "epochs_run", "best_epoch", "train_seconds",
                                              "seconds_per_epoch", "seconds_to_best",
                                              "peak_rss_mb", "device", "machine", "git_commit")}
                           | {"test": r["test"], "valid": r["valid"]})
    for split in ("valid", "test"):
        out[split] = {}
        for k in KEYS:
            values = [r[split][k] for r in runs]
            out[split][k] = {"mean": statistics.fmean(values),
                             "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    for k in ("seconds_per_epoch", "seconds_to_best", "train_seconds", "peak_rss_mb"):
        out[k] = statistics.fmean(r[k] for r in runs)
    out["config"] = runs[0]["config"]
    return out


def stored_runs(path: Path, extra: list[str]) -> dict[int, dict]:
    """Runs of a committed summary made with the same train arguments, by seed."""
    if not path.exists():
        return {}
    summary = json.loads(path.read_text())
    if summary.get("train_args") != extra:
        return {}
    return {r["seed"]: r | {"config": summary["config"]} for r in summary["runs"]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    extra = [a for a in args.train_args if a != "--"]
    path = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    stored = stored_runs(path, extra)
    runs = []
    for seed in args.seeds:
        out = ROOT / "benchmarks" / ".work" / args.name / f"seed{seed}"
        if not (out / "metrics.json").exists() and seed in stored:
            print(f"seed {seed}: taken from {path.name} (its run folder is gone)", flush=True)
            runs.append(stored[seed])
            continue
        cmd = [sys.executable, "-m", "rclrec", "train", "--seed", str(seed), "--out", str(out),
               "--resume", "--quiet", *extra]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        runs.append(json.loads((out / "metrics.json").read_text()))
    summary = summarise(runs) | {"command": "python benchmarks/seeds.py " + " ".join(sys.argv[1:]),
                                 "train_args": extra}
    write_json_atomic(path, summary)
    t = summary["test"]
    print(f"{args.name}: test NDCG@10 {t['NDCG@10']['mean']:.4f} +- {t['NDCG@10']['std']:.4f}, "
          f"HR@10 {t['HR@10']['mean']:.4f} +- {t['HR@10']['std']:.4f}; written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
