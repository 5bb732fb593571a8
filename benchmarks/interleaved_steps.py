"""The training step of an older full-softmax CE and dropout against today's, step by step in
one process, so that both see the same load.

On a shared machine two runs in turn (side_by_side_epoch.py) can see loads that differ by tens
of percent; here the old and the new step alternate on every batch of the epoch (which goes
first alternates too), each on its own copy of the same initial model, with the same dropout
seed per step. The old step uses the CE class of an older tree's
``rclrec/losses/recommendation.py`` and ``nn.Dropout`` in the encoder; everything else is
today's code. Reported: each variant's CPU and wall seconds summed over the epoch, per round,
and the ratio old / new (median and range over rounds).

    git worktree add /tmp/old 3f8cf0c
    python benchmarks/interleaved_steps.py --old-tree /tmp/old --rounds 3 --threads 1

With ``--old-part encoder`` the old step is instead the older tree's SASRec encoder
(``rclrec/models/sasrec.py`` and ``layers.py``, the same weights) with today's CE and
everything else, so that the ratio is the encoder's share of a whole step.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from encoder_profile import old_encoder_class
from result_file import write_result
from torch import nn
from tree_modules import load_module

from rclrec.config import load_config
from rclrec.data.batches import batch_order
from rclrec.data.split import leave_one_out
from rclrec.losses import recommendation
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.models.layers import Dropout
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def old_cross_entropy(tree: Path) -> type:
    """The full-softmax CE class of the older tree, loaded beside today's module."""
    path = tree / "rclrec" / "losses" / "recommendation.py"
    return load_module("old_recommendation", path)._FullSoftmaxCrossEntropy


def with_nn_dropout(encoder: nn.Module) -> nn.Module:
    """A copy of ``encoder`` whose Dropout modules are plain ``nn.Dropout``."""
    encoder = copy.deepcopy(encoder)
    for module in encoder.modules():
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    return encoder


def sasrec_setup(dataset: str):
    """The default SASRec run's config, split and training instances of ``dataset``, and its
    encoder as initialised with seed 0."""
    cfg = resolve(load_config(overrides={"method": "sasrec", "data.dataset": dataset}))
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    torch.manual_seed(0)
    return cfg, split, instances, build_encoder(cfg.encoder, split.num_items, 0)


def sasrec_trainers(cfg, split, instances, models: dict[str, nn.Module]
                    ) -> tuple[dict[str, Trainer], list[np.ndarray]]:
    """A trainer (SASRec's method, its own Adam) per model, and one epoch's batches in one
    fixed order."""
    device = torch.device("cpu")
    trainers = {}
    for label, model in models.items():
        method = method_class("sasrec")(cfg, split, instances, device)
        trainers[label] = Trainer(cfg, split, instances, model, method, device,
                                  ROOT / "benchmarks" / ".work", show_progress=False)
    batches = batch_order(next(iter(trainers.values())).lengths, cfg.train.batch_size,
                          np.random.default_rng(0))
    return trainers, batches


def alternated_epoch(batches: list[np.ndarray], steps: dict[str, Callable]
                     ) -> tuple[dict[str, list[float]], float]:
    """Every batch run by each of the two ``steps`` in turn (which goes first alternates; a
    step is called with the batch and its number, the dropout seed, and returns CPU s, wall s
    and loss): per label [CPU s, wall s] over the epoch, and the largest loss difference."""
    labels = list(steps)
    totals = {label: [0.0, 0.0] for label in labels}
    max_loss_gap = 0.0
    for number, index in enumerate(batches):
        losses = {}
        for label in labels if number % 2 == 0 else reversed(labels):
            cpu, wall, losses[label] = steps[label](index, number)
            totals[label][0] += cpu
            totals[label][1] += wall
        max_loss_gap = max(max_loss_gap, abs(losses[labels[0]] - losses[labels[1]]))
    return totals, max_loss_gap


def step(trainer: Trainer, index: np.ndarray, seed: int, ce_class: type) -> tuple[float, float,
                                                                                   float]:
    """One training step with ``ce_class`` as the CE: (CPU s, wall s, loss)."""
    today = recommendation._FullSoftmaxCrossEntropy
    recommendation._FullSoftmaxCrossEntropy = ce_class
    try:
        torch.manual_seed(seed)
        cpu, wall = time.process_time(), time.perf_counter()
        batch = trainer.make_batch(index)
        loss, _ = trainer.loss_step(batch)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        return time.process_time() - cpu, time.perf_counter() - wall, float(loss.detach())
    finally:
        recommendation._FullSoftmaxCrossEntropy = today


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--old-tree", type=Path, required=True)
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="epochs, each over every batch")
    p.add_argument("--old-part", choices=("ce", "encoder"), default="ce",
                   help="what the old step takes from the old tree: the CE (with nn.Dropout) "
                        "or the SASRec encoder")
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg, split, instances, encoder = sasrec_setup(args.dataset)
    if args.old_part == "ce":
        old = (with_nn_dropout(encoder), old_cross_entropy(args.old_tree))
    else:
        old_encoder = old_encoder_class(args.old_tree)(cfg.encoder, split.num_items)
        old_encoder.load_state_dict(encoder.state_dict())
        old = (old_encoder, recommendation._FullSoftmaxCrossEntropy)
    variants = {"old": old, "new": (encoder, recommendation._FullSoftmaxCrossEntropy)}
    trainers, batches = sasrec_trainers(cfg, split, instances,
                                        {label: model for label, (model, _) in variants.items()})
    rounds, max_loss_gap = [], 0.0
    for round_no in range(1, args.rounds + 1):
        totals, gap = alternated_epoch(
            batches, {label: partial(step, trainers[label], ce_class=ce_class)
                      for label, (_, ce_class) in variants.items()})
        max_loss_gap = max(max_loss_gap, gap)
        rounds.append({label: {"cpu_seconds": c, "wall_seconds": w}
                       for label, (c, w) in totals.items()})
        print(f"round {round_no}: old {totals['old'][0]:.2f} CPU s ({totals['old'][1]:.2f} wall)"
              f", new {totals['new'][0]:.2f} CPU s ({totals['new'][1]:.2f} wall), "
              f"x{totals['old'][0] / totals['new'][0]:.3f} CPU, "
              f"x{totals['old'][1] / totals['new'][1]:.3f} wall", flush=True)
    summary = {}
    for kind in ("cpu_seconds", "wall_seconds"):
        ratios = [r["old"][kind] / r["new"][kind] for r in rounds]
        summary[kind] = {label: statistics.median(r[label][kind] for r in rounds)
                         for label in variants}
        summary[kind]["speed_up"] = {"median": statistics.median(ratios), "min": min(ratios),
                                     "max": max(ratios)}
        s = summary[kind]
        print(f"{kind}: old {s['old']:.2f}, new {s['new']:.2f} per epoch (medians); speed-up "
              f"x{s['speed_up']['median']:.3f} [{s['speed_up']['min']:.3f}-"
              f"{s['speed_up']['max']:.3f}]")
    print(f"largest |loss old - loss new| over the steps: {max_loss_gap:.2e}")
    write_result(args.name or f"interleaved_steps_{args.dataset}",
                 {"dataset": args.dataset, "threads": args.threads, "steps": len(batches),
                  "old_tree": str(args.old_tree), "old_part": args.old_part,
                  "rounds": rounds, "summary": summary,
                  "max_loss_gap": max_loss_gap})
    return 0


if __name__ == "__main__":
    sys.exit(main())
