"""Full ranking over a catalogue of a million items: seconds and peak memory of
evaluate_ranking, this tree's (items scored in blocks) against another tree's (one users x items
score matrix per batch), each in a fresh process.

    git worktree add /tmp/old 20e2562
    python benchmarks/large_catalog_ranking.py --items 1000000 --users 1024 --old /tmp/old \
        --batches 256,1024 --old-batches 256 --rounds 2

Every version ranks the same users with the same (untrained, seeded) SASRec whose item table
holds exact ties (copies of item 7, the target of every fourth user); at equal batch sizes the
metrics and every user's expected rank must agree exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tree_modules import load_module


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(args) -> None:
    """One measurement in this process: build the model and users, rank, print JSON."""
    import torch

    from rclrec.config import EncoderConfig
    from rclrec.models import build_encoder

    torch.set_num_threads(args.threads)
    module = "serve/recommender" if args.serve else "eval/ranking"
    if args.tree:
        module = load_module("other_version", Path(args.tree) / "rclrec" / f"{module}.py")
    else:
        module = importlib.import_module("rclrec." + module.replace("/", "."))
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(max_len=50), args.items).eval()
    with torch.no_grad():  # exact ties, spread over the catalogue: copies of item 7
        weight = encoder.item_embedding.weight
        weight[torch.arange(1, args.items + 1, max(1, args.items // 100))] = weight[7].clone()
    rng = np.random.default_rng(0)
    # Popular items more often, as in real logs (Zipf-like ranks over the catalogue).
    popular = np.minimum((rng.pareto(1.0, size=(args.users, 50)) + 1).astype(np.int64),
                         args.items)
    lengths = rng.integers(1, 51, size=args.users)
    inputs = [popular[u, :lengths[u]] for u in range(args.users)]
    targets = rng.integers(1, args.items + 1, size=args.users)
    targets[::4] = 7  # a tied target
    if args.serve:  # rclrec serve's top 10 of each history, 256 histories per pass
        recommender = module.Recommender(encoder, [str(i) for i in range(1, args.items + 1)],
                                         50)
        histories = [[str(i) for i in s] for s in inputs]
    rss_before = memory_mb("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    if args.serve:
        top = recommender.recommend(histories, k=10)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rss_before_mb": rss_before,
                          "peak_rss_mb": memory_mb("VmHWM"), "metrics": None,
                          "ranks_sha256": hashlib.sha256(json.dumps(
                              [r.items for r in top]).encode()).hexdigest(),
                          "top_scores": [r.scores for r in top],
                          "top_items": [r.items for r in top],
                          "mean_expected_rank": None}))
        return
    metrics, ranks = module.evaluate_ranking(encoder, inputs, targets, 50,
                                             batch_size=args.batch, return_ranks=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # The untrained model ranks few targets in the top 20: the expected ranks are compared.
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rss_before_mb": rss_before,
                      "peak_rss_mb": memory_mb("VmHWM"), "metrics": metrics,
                      "ranks_sha256": hashlib.sha256(ranks.tobytes()).hexdigest(),
                      "mean_expected_rank": float(ranks.mean())}))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=2048)
    p.add_argument("--batches", default="256,1024", help="eval batch sizes to measure")
    p.add_argument("--old", type=Path, help="source tree of the other version")
    p.add_argument("--old-batches", default="256", help="its batch sizes (its memory grows "
                   "with batch x items)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="each version this many times, "
                   "alternated (the machine's load changes)")
    p.add_argument("--serve", action="store_true", help="measure rclrec serve's top 10 "
                   "(Recommender.recommend) instead of the evaluation's ranking")
    p.add_argument("--name", help="result file name [large_catalog_ranking_<items>]")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    runs = []
    for _ in range(args.rounds):
        runs += [("new", None, int(b)) for b in args.batches.split(",")]
        if args.old:
            runs += [("old", str(args.old), int(b)) for b in args.old_batches.split(",")]
    rows = []
    for name, tree, batch in runs:
        cmd = [sys.executable, __file__, "--worker", "--items", str(args.items), "--users",
               str(args.users), "--threads", str(args.threads), "--batch", str(batch),
               *(["--serve"] if args.serve else [])]
        if tree:
            cmd += ["--tree", tree]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        rows.append({"version": name, "batch": batch, **out})
        print(f"{name} batch {batch}: {out['seconds']:.1f} s ({out['cpu_seconds']:.1f} CPU s), "
              f"peak RSS {out['peak_rss_mb']:.0f} MB "
              f"(+{out['peak_rss_mb'] - out['rss_before_mb']:.0f} MB while ranking)", flush=True)
    # The encoder's states depend on the batch (its padding width may change SASRec's last
    # float bits), so the versions are compared at equal batch sizes.
    if args.serve:
        # Tied items (the copies of item 7) may come in any order, and a product of another
        # shape may round the last bit: the top 10 scores are compared, not the item ids.
        scores = [np.array(r.pop("top_scores")) for r in rows]
        items = [r.pop("top_items") for r in rows]
        gap = max(float(np.abs(s - scores[0]).max()) for s in scores)
        copies = {str(i) for i in range(1, args.items + 1, max(1, args.items // 100))} | {"7"}
        differ = [h for h in range(args.users) if any(it[h] != items[0][h] for it in items)]
        untied = [h for h in differ if any((set(it[h]) ^ set(items[0][h])) - copies
                                           for it in items)]
        print(f"top 10 scores agree to {gap:.2g}; {len(differ)} of {args.users} histories list "
              f"other item ids, {len(untied)} of them beyond the tied copies of item 7")
        if gap > 1e-5 or untied:
            raise SystemExit("the top 10 differs between versions beyond ties")
        rows = [{**r, "top_scores_max_difference": gap, "histories_differing": len(differ),
                 "differing_beyond_ties": len(untied)} for r in rows]
    for r in rows if not args.serve else []:
        same = [o for o in rows if o["batch"] == r["batch"]]
        if any((o["metrics"], o["ranks_sha256"]) != (r["metrics"], r["ranks_sha256"])
               for o in same):
            raise SystemExit(f"results differ at batch {r['batch']}: "
                             f"{[(o['metrics'], o['ranks_sha256']) for o in same]}")
    if not args.serve:
        print(f"identical between versions at equal batch sizes: metrics and every user's "
              f"expected rank (mean {rows[0]['mean_expected_rank']:.1f})")
    from result_file import write_result

    kind = "serve" if args.serve else "ranking"
    write_result(args.name or f"large_catalog_{kind}_{args.items}", {
        "items": args.items, "users": args.users, "threads": args.threads, "runs": rows,
        "old_tree": str(args.old) if args.old else None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
