"""Encoder time of the last-position state: ``forward(x)[:, -1]`` against ``last_state(x)``.

Ranking, serving and the contrastive views use only the last position; SASRec's last block
then asks only from it. Random Beauty-sized ids, the paper's encoder, eval mode:

    python benchmarks/last_state_timing.py --threads 1

Writes benchmarks/results/last_state_timing.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from rclrec.config import EncoderConfig
from rclrec.models import build_encoder
from rclrec.provenance import git_commit

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="sasrec")
    p.add_argument("--items", type=int, default=12101)  # Beauty
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = EncoderConfig(name=args.encoder)
    enc = build_encoder(cfg, num_items=args.items).eval()
    x = torch.randint(1, args.items + 1, (args.batch, cfg.max_len))
    x[: args.batch // 4, : cfg.max_len // 2] = 0  # a quarter of short, left-padded histories
    ways = {"forward_last": lambda: enc(x)[:, -1], "last_state": lambda: enc.last_state(x)}
    seconds = {name: [] for name in ways}
    with torch.no_grad():
        assert torch.allclose(ways["forward_last"](), ways["last_state"](), atol=1e-5)
        for _ in range(args.rounds):  # alternating, so both see the same load
            for name, fn in ways.items():
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
    best = {name: min(s) for name, s in seconds.items()}
    for name, s in best.items():
        print(f"{name:>13}: {1000 * s:7.1f} ms per batch of {args.batch} (best of {args.rounds})")
    print(f"last_state / forward: {best['last_state'] / best['forward_last']:.2f}")
    out = {"encoder": args.encoder, "batch": args.batch, "max_len": cfg.max_len,
           "threads": args.threads, "best_seconds": best, "all_seconds": seconds,
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "git_commit": git_commit(),
           "command": "python benchmarks/last_state_timing.py " + " ".join(
               f"--{k} {v}" for k, v in vars(args).items())}
    path = ROOT / "benchmarks" / "results" / "last_state_timing.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
