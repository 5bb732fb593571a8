"""The trainer's SASRec step with the target positions found by a device boolean mask (the
step before issue 15's change) or on the host (``Batch.host_targets``, today's), over one
epoch in one process: the two alternate on every batch (which goes first alternates too),
each on its own copy of the same initial model, with the same dropout seed per step.

On a GPU the mask makes the host wait for the device (its count); on the CPU nothing waits,
and this measures what finding the positions on the host costs or saves there.

    RCLREC_DATA=/work/shared/data python benchmarks/host_targets_ab.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from result_file import write_result

from rclrec.config import load_config
from rclrec.data.batches import batch_order
from rclrec.data.split import leave_one_out
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import Trainer

VARIANTS = ("device mask", "host targets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve(load_config(overrides={"data.dataset": args.dataset,
                                         "train.threads": str(args.threads)}))
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    cpu = torch.device("cpu")
    trainers = {}
    for name in VARIANTS:
        torch.manual_seed(0)
        method = method_class("sasrec")(cfg, split, instances, cpu)
        encoder = build_encoder(cfg.encoder, split.num_items, 0)
        trainers[name] = Trainer(cfg, split, instances, encoder, method, cpu, Path("."),
                                 show_progress=False)

    def step(name: str, index: np.ndarray, seed: int) -> float:
        trainer = trainers[name]
        torch.manual_seed(seed)
        batch = trainer.make_batch(index)
        hidden = trainer.encoder(batch.inputs)
        targets = batch.host_targets if name == "host targets" else batch.targets
        states, targets = select_target_positions(hidden, targets)
        loss = recommendation_loss(trainer.method.rec_loss, states, targets,
                                   trainer.encoder.item_table)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        return float(loss.detach())

    batches = batch_order(trainers[VARIANTS[0]].lengths, cfg.train.batch_size,
                          np.random.default_rng(0))
    seconds = {name: [] for name in VARIANTS}
    losses = {name: [] for name in VARIANTS}
    for i, index in enumerate(batches):
        for name in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):
            start = time.perf_counter()
            losses[name].append(step(name, index, i))
            seconds[name].append(time.perf_counter() - start)
    out = {name: {"seconds": round(sum(seconds[name]), 3),
                  "median_step_ms": round(1000 * statistics.median(seconds[name]), 2)}
           for name in VARIANTS}
    out["ratio_mask_over_host"] = round(out["device mask"]["seconds"]
                                        / out["host targets"]["seconds"], 3)
    out["same_losses"] = losses["device mask"] == losses["host targets"]
    out.update(dataset=args.dataset, steps=len(batches), threads=args.threads)
    print(out)
    write_result(f"host_targets_ab_{args.dataset}", out)


if __name__ == "__main__":
    main()
