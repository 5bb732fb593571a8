"""Seconds per training epoch of each method on one dataset, measured in one process.

Run it on a quiet machine: it times `--steps` steps of each method (after one warm-up step)
and scales to a full epoch, so all methods see the same load.

    python benchmarks/epoch_timing.py --dataset beauty --methods sasrec rcl --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rclrec.config import load_config
from rclrec.data.batches import batch_order
from rclrec.data.split import leave_one_out
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.provenance import device_label, git_commit, peak_rss_mb
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def time_method(method: str, dataset: str, steps: int, overrides: dict,
                device: torch.device) -> dict:
    cfg = resolve(load_config(overrides={"method": method, "data.dataset": dataset, **overrides}))
    torch.manual_seed(0)
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    m = method_class(method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, m.extra_tokens).to(device)
    trainer = Trainer(cfg, split, instances, encoder, m, device, ROOT / "benchmarks" / ".work",
                      show_progress=False)
    m.setup(encoder)
    batches = batch_order(trainer.lengths, cfg.train.batch_size, np.random.default_rng(0))

    def step(index):
        loss, _ = trainer.loss_step(trainer.make_batch(index))
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()

    def sync():  # CUDA runs asynchronously: stop the clock only when the work is done
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step(batches[0])  # warm-up
    chosen = batches[1:steps + 1]
    sync()
    start = time.perf_counter()
    for index in chosen:
        step(index)
    sync()
    per_step = (time.perf_counter() - start) / len(chosen)
    start = time.perf_counter()
    trainer.validate()
    sync()
    return {"method": method, "seconds_per_step": per_step, "steps_per_epoch": len(batches),
            "seconds_per_epoch": per_step * len(batches),
            "validation_seconds": time.perf_counter() - start}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--methods", nargs="+", default=["sasrec", "rcl"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                   help="folder of the result JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(o.split("=", 1) for o in args.overrides)
    device = torch.device(args.device)
    rows = [time_method(m, args.dataset, args.steps, overrides, device) for m in args.methods]
    base = rows[0]["seconds_per_epoch"]
    for r in rows:
        r["relative_to_first"] = r["seconds_per_epoch"] / base
        print(f"{r['method']:>10}: {r['seconds_per_epoch']:7.1f} s/epoch "
              f"({r['steps_per_epoch']} steps), x{r['relative_to_first']:.2f}; "
              f"validation {r['validation_seconds']:.1f} s")
    out = {"dataset": args.dataset, "threads": args.threads, "rows": rows,
           "device": device_label(device),
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "git_commit": git_commit(), "peak_rss_mb": peak_rss_mb(),
           "command": "python benchmarks/epoch_timing.py " + " ".join(sys.argv[1:])}
    name = args.name or f"epoch_timing_{args.dataset}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
