"""Latency of `rclrec.serve.Recommender` on a trained run: one history per call, and batches.

    python benchmarks/serve_latency.py --run benchmarks/.work/cells/<hash> --threads 1

Histories are the users' test inputs of the run's dataset (the most recent max_len items).
Writes benchmarks/results/serve_latency_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from rclrec.config import config_from_dict
from rclrec.data.split import leave_one_out
from rclrec.provenance import git_commit
from rclrec.run import load_data
from rclrec.serve import Recommender

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--singles", type=int, default=200, help="one-history calls to time")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recommender.from_run(args.run)
    cfg = config_from_dict(json.loads((Path(args.run) / "config.json").read_text()))
    split = leave_one_out(load_data(cfg))
    histories = [[rec.item_ids[i - 1] for i in seq[-cfg.encoder.max_len:]]
                 for seq in split.test_inputs()]
    rng = np.random.default_rng(0)
    rec.recommend(histories[:8], args.k)  # warm-up
    rows = {}
    picks = rng.choice(len(histories), args.singles, replace=False)
    start = time.perf_counter()
    for i in picks:
        rec.recommend([histories[i]], args.k)
    rows["1"] = (time.perf_counter() - start) / len(picks)
    for size in args.batches:
        picks = rng.choice(len(histories), size, replace=False)
        start = time.perf_counter()
        rec.recommend([histories[i] for i in picks], args.k)
        rows[str(size)] = time.perf_counter() - start
    out = {"run": args.run, "dataset": cfg.data.dataset, "items": len(rec.item_ids),
           "k": args.k, "threads": args.threads, "seconds_per_call_by_batch_size": rows,
           "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
           "commit": git_commit()}
    path = ROOT / "benchmarks" / "results" / f"serve_latency_{cfg.data.dataset}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for size, seconds in rows.items():
        print(f"batch {size:>5}: {seconds * 1000:8.1f} ms per call "
              f"({seconds / int(size) * 1000:.2f} ms per history)")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
