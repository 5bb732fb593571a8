"""How much gradient RCL's weak positives can get: the terms of Eq. 17 on a trained model.

With paper-exact weights (Eq. 16), members of the batch with similarity 0 to the centre drop out
of the weighted denominator, so l_w(u, b) is close to 0 and below the strong pair's loss: the
boundary max(l_w, Lmax) then always takes Lmax and the weak pair gets no gradient. This script
measures l(u, a), l_w(u, b) and the share of centres where the boundary is active, for several
``rcl.weight_floor`` values, on a few training batches of a trained run (dropout on, no update).

    python benchmarks/weighted_loss_probe.py --run benchmarks/.work/cells/<hash> \\
        --floors 0 0.01 0.1 1 --name weighted_loss_probe_beauty
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from rclrec.data.batches import prefix_instances, window_instances
from rclrec.data.split import leave_one_out
from rclrec.files import write_json_atomic
from rclrec.methods.base import Batch
from rclrec.methods.rcl import RCL
from rclrec.model_file import load_model
from rclrec.provenance import git_commit
from rclrec.run import load_data

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, help="a trained RCL run folder")
    p.add_argument("--floors", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="weighted_loss_probe")
    args = p.parse_args()
    torch.set_num_threads(1)
    encoder, cfg = load_model(args.run, "cpu")
    encoder.train()  # the loss as training sees it (dropout on)
    split = leave_one_out(load_data(cfg))
    make = window_instances if cfg.train.instances == "windows" else prefix_instances
    inst = make(split.train, cfg.data.max_len)
    centres = np.flatnonzero(inst.whole)
    out = {"command": "python benchmarks/weighted_loss_probe.py " + " ".join(sys.argv[1:]),
           "commit": git_commit(), "run": args.run, "dataset": cfg.data.dataset,
           "similarity": cfg.rcl.similarity, "tau": cfg.rcl.tau, "score": cfg.rcl.score,
           "batches": args.batches, "floors": []}
    for floor in args.floors:
        rcl_cfg = dataclasses.replace(cfg.rcl, weight_floor=floor)
        method = RCL(cfg.with_section("rcl", rcl_cfg), split, inst, torch.device("cpu"))
        method.setup(encoder)
        rng = np.random.default_rng(args.seed)  # the same batches (and dropout) for every floor
        torch.manual_seed(args.seed)
        stats = []
        for _ in range(args.batches):
            rows = rng.choice(centres, cfg.train.batch_size, replace=False)
            batch = Batch.of(inst, rows, torch.device("cpu"))
            with torch.no_grad():
                stats.append(method.extra_loss(batch, encoder(batch.inputs), encoder)[1])
        row = {"weight_floor": floor, **{k: float(np.mean([s[k] for s in stats]))
                                          for k in stats[0]}}
        out["floors"].append(row)
        print(f"floor {floor:g}: l(u,a) {row['rcl_l_strong']:.3f}  l_w(u,b) "
              f"{row['rcl_l_weak']:.3f}  boundary active {row['rcl_boundary_active']:.1%} of "
              f"centres with both positives ({row['rcl_both']:.1%} of centres)", flush=True)
    path = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    write_json_atomic(path, out)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
