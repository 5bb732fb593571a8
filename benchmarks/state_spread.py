"""Do a run's users still get their own state and ranking, or one shared by all of them?

A loss can drive an encoder to give every user nearly the same state (so the same ranking,
close to popularity) while its value keeps falling: gBCE without its score shift did this on
Beauty (docs/LOSSES.md). For each run folder this reads the weights of ``checkpoint.pt`` (the
last epoch done), encodes the first ``--users`` validation inputs and reports how far the
states and scores vary across users compared with across items.

    python benchmarks/state_spread.py --name state_spread_gbce_beauty DIR [DIR ...]

Each DIR is a run folder of `rclrec train` (config.json and checkpoint.pt).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from result_file import write_result
from scipy.stats import spearmanr

from rclrec.config import config_from_dict
from rclrec.data.batches import left_pad
from rclrec.models import build_encoder
from rclrec.models.encode import last_states
from rclrec.run import load_split
from rclrec.train.checkpoint import load_torch


def spread(run: Path, users: int, sample_items: int) -> dict:
    cfg = config_from_dict(json.loads((run / "config.json").read_text()))
    _, split = load_split(cfg)
    encoder = build_encoder(cfg.encoder, split.num_items)
    checkpoint = load_torch(run / "checkpoint.pt")
    encoder.load_state_dict(checkpoint["encoder"])
    encoder.eval()
    with torch.no_grad():
        seqs = torch.from_numpy(left_pad(split.valid_inputs()[:users], cfg.encoder.max_len))
        states = last_states(encoder, seqs)
        table = encoder.item_table[1:]
        scores = states @ table.T  # (users, items)
    top = scores.topk(10, dim=1).indices.tolist()
    shared_top10 = np.mean([len(set(t) & set(top[0])) for t in top[1:]])
    counts = np.bincount(np.concatenate(split.train), minlength=split.num_items + 1)[1:]
    rows = torch.randperm(len(table), generator=torch.Generator().manual_seed(0))[:sample_items]
    unit = torch.nn.functional.normalize(table[rows], dim=1)
    cosines = (unit @ unit.T)[~torch.eye(len(rows), dtype=torch.bool)]
    return {
        "run": str(run), "loss": cfg.train.loss, "epochs_done": checkpoint["state"]["epoch"],
        "state_norm_mean": states.norm(dim=1).mean().item(),
        "norm_of_mean_state": states.mean(0).norm().item(),
        "score_mean": scores.mean().item(),
        "score_std_across_items": scores.std(1).mean().item(),
        "score_std_across_users": scores.std(0).mean().item(),
        "top10_shared_with_first_user": float(shared_top10),
        "mean_score_spearman_with_training_count": float(
            spearmanr(scores.mean(0).numpy(), counts).correlation),
        "item_vectors_mean_pairwise_cosine": cosines.mean().item(),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--users", type=int, default=400)
    p.add_argument("--sample-items", type=int, default=2000)
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [spread(r, args.users, args.sample_items) for r in args.runs]
    for r in rows:
        print(f"{r['run']} ({r['loss']}, {r['epochs_done']} epochs): state norm "
              f"{r['state_norm_mean']:.3f}, norm of the mean state {r['norm_of_mean_state']:.3f}; "
              f"score std across items {r['score_std_across_items']:.3f}, across users "
              f"{r['score_std_across_users']:.3f}; top-10 shared with the first user "
              f"{r['top10_shared_with_first_user']:.1f}; item cosine "
              f"{r['item_vectors_mean_pairwise_cosine']:.3f}")
    write_result(args.name, {"runs": rows, "users": args.users})
    return 0


if __name__ == "__main__":
    sys.exit(main())
