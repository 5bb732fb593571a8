"""Training SASRec on a synthetic catalog of a million items with a sampled loss, in bounded memory.

The full-softmax CE scores every item at every position (positions x items floats per step);
the sampled losses score only the batch's targets and ``train.negatives`` shared uniform items,
so a step's memory does not grow with the catalog. This script generates the data with numpy
(Markov-chain walks over a Zipf-like popularity, fast for tens of millions of interactions),
times ``--steps`` training steps after a warm-up and extrapolates to an epoch (stated as such in
the output), and records the process's peak RSS. With ``--eval-users`` it also ranks the whole
catalog for a sample of users (the current full-catalog ranking, ``--eval-batch`` users at a
time).

    python benchmarks/large_catalog_training.py --items 1000000 --interactions 10000000 --steps 30
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from result_file import write_result

from rclrec.config import load_config
from rclrec.data.batches import batch_order, window_instances
from rclrec.data.dataset import SequenceDataset
from rclrec.data.split import leave_one_out
from rclrec.eval.ranking import evaluate_ranking
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import resolve
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_sequences(num_items: int, interactions: int, min_len: int, max_len: int,
                        zipf: float, follow: float, seed: int) -> list[np.ndarray]:
    """Walks where each step follows one of its item's 3 successors with probability
    ``follow``, else jumps to an item drawn by popularity ~ 1 / rank^zipf. Vectorised over
    users: one numpy operation per position, not per interaction."""
    rng = np.random.default_rng(seed)
    num_users = interactions // ((min_len + max_len) // 2)
    lengths = rng.integers(min_len, max_len + 1, size=num_users)
    popularity = 1.0 / np.arange(1, num_items + 1) ** zipf
    cumulative = np.cumsum(popularity / popularity.sum())
    ranked = rng.permutation(num_items) + 1  # which item has each popularity rank

    def popular(n: int) -> np.ndarray:
        return ranked[np.minimum(np.searchsorted(cumulative, rng.random(n)), num_items - 1)]

    # Successors: offsets in 1..num_items-1, so never the item itself.
    successors = (np.arange(num_items + 1)[:, None] - 1
                  + rng.integers(1, num_items, size=(num_items + 1, 3))) % num_items + 1
    walks = np.empty((num_users, max_len), dtype=np.int64)
    walks[:, 0] = popular(num_users)
    for step in range(1, max_len):
        nxt = successors[walks[:, step - 1], rng.integers(0, 3, size=num_users)]
        jump = rng.random(num_users) >= follow
        nxt[jump] = popular(int(jump.sum()))
        walks[:, step] = nxt
    return [walks[u, :n] for u, n in enumerate(lengths.tolist())]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--interactions", type=int, default=10_000_000)
    p.add_argument("--min-len", type=int, default=5)
    p.add_argument("--max-len", type=int, default=35)
    p.add_argument("--zipf", type=float, default=0.8)
    p.add_argument("--follow", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=30, help="timed training steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-users", type=int, default=0, help="rank the catalog for this many")
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="config settings, e.g. train.loss=gbce (default: sampled, 256 negatives)")
    p.add_argument("--name", default="large_catalog_training")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {"train.loss": "sampled", "train.negatives": "256", "data.max_len": "50",
                 **dict(o.split("=", 1) for o in args.overrides)}
    cfg = resolve(load_config(overrides=overrides))

    started = time.perf_counter()
    sequences = synthetic_sequences(args.items, args.interactions, args.min_len, args.max_len,
                                    args.zipf, args.follow, seed=0)
    generate_seconds = time.perf_counter() - started
    split = leave_one_out_of(sequences, args.items)
    instances = window_instances(split.train, cfg.encoder.max_len)
    data_seconds = time.perf_counter() - started
    rss_data = current_rss_mb()
    print(f"{len(sequences):,} users, {sum(map(len, sequences)):,} interactions, "
          f"{args.items:,} items: generated in {generate_seconds:.1f} s, split and "
          f"{len(instances.inputs):,} windows in {data_seconds:.1f} s; RSS {rss_data:.0f} MB",
          flush=True)

    device = torch.device("cpu")
    method = method_class(cfg.method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens).to(device)
    trainer = Trainer(cfg, split, instances, encoder, method, device,
                      ROOT / "benchmarks" / ".work", show_progress=False)
    batches = batch_order(trainer.lengths, cfg.train.batch_size, np.random.default_rng(0))

    def step(index: np.ndarray) -> float:
        loss, _ = trainer.loss_step(trainer.make_batch(index))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        return float(loss.detach())

    step(batches[0])  # warm-up: Adam's moments and the gradient buffers are allocated here
    rss_after_warmup = current_rss_mb()
    chosen = batches[1:args.steps + 1]
    cpu, wall = time.process_time(), time.perf_counter()
    losses = [step(index) for index in chosen]
    cpu_per_step = (time.process_time() - cpu) / len(chosen)
    wall_per_step = (time.perf_counter() - wall) / len(chosen)
    rss_after_steps = current_rss_mb()
    out = {"items": args.items, "users": len(sequences),
           "interactions": int(sum(map(len, sequences))), "windows": len(instances.inputs),
           "zipf": args.zipf, "follow": args.follow, "threads": args.threads,
           "config": {"loss": cfg.train.loss, "negatives": cfg.train.negatives,
                      "batch_size": cfg.train.batch_size, "max_len": cfg.encoder.max_len,
                      "hidden_dim": cfg.encoder.hidden_dim},
           "generate_seconds": generate_seconds, "data_seconds": data_seconds,
           "timed_steps": len(chosen), "steps_per_epoch": len(batches),
           "wall_seconds_per_step": wall_per_step, "cpu_seconds_per_step": cpu_per_step,
           "epoch_seconds_extrapolated_wall": wall_per_step * len(batches),
           "epoch_seconds_extrapolated_cpu": cpu_per_step * len(batches),
           "loss_first_last": [losses[0], losses[-1]],
           "rss_mb_data": rss_data, "rss_mb_after_warmup": rss_after_warmup,
           "rss_mb_after_steps": rss_after_steps}
    print(f"{len(chosen)} steps: {wall_per_step:.2f} s wall, {cpu_per_step:.2f} s CPU per step; "
          f"{len(batches):,} steps per epoch -> {wall_per_step * len(batches) / 60:.1f} min "
          f"per epoch (extrapolated); loss {losses[0]:.3f} -> {losses[-1]:.3f}; RSS "
          f"{rss_after_warmup:.0f} MB after the first step, {rss_after_steps:.0f} MB after "
          f"the last", flush=True)
    if args.eval_users:
        users = np.random.default_rng(1).choice(len(sequences), args.eval_users, replace=False)
        inputs = [split.train[u] for u in users]
        wall = time.perf_counter()
        metrics = evaluate_ranking(encoder, inputs, split.valid_targets[users],
                                   cfg.encoder.max_len, batch_size=args.eval_batch, device=device)
        out["eval"] = {"users": args.eval_users, "batch": args.eval_batch,
                       "seconds": time.perf_counter() - wall, "valid": metrics}
        print(f"ranking {args.items:,} items for {args.eval_users:,} users: "
              f"{out['eval']['seconds']:.1f} s, valid NDCG@10 {metrics['NDCG@10']:.4f}",
              flush=True)
    out["peak_rss_mb"] = peak_rss_mb()
    print(f"peak RSS {out['peak_rss_mb']:.0f} MB")
    write_result(args.name, out)
    return 0


def leave_one_out_of(sequences: list[np.ndarray], num_items: int):
    return leave_one_out(SequenceDataset(sequences=sequences, num_items=num_items,
                                         name="large-catalog"))


if __name__ == "__main__":
    sys.exit(main())
