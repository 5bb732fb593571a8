"""The encoder's share of a SASRec training step: its forward and backward over every batch of
one Beauty epoch, against its arithmetic floor, op by op, and against an older tree's encoder.

    python benchmarks/encoder_profile.py --threads 2 --rounds 3
    git worktree add --detach /tmp/old_enc ff6f403
    python benchmarks/encoder_profile.py --threads 2 --rounds 5 --old-tree /tmp/old_enc

The batches are the trainer's (``batch_order`` with seed 0, each trimmed to its longest row);
the encoder (the paper's: d 64, 2 blocks, 2 heads, dropout 0.5) is in training mode and gets
a fixed upstream gradient of its whole output, as the CE gives it (a dense one: the CE's
gradient is zero only at positions without a target, which costs the same). Parameter
gradients are set to None before each step, as the trainer does; nothing is updated, so every
round does the same work. The floor is ``profile_step.epoch_flops``'s encoder part (the
products of the four linears and of attention, forward and backward) at the square-matmul
peak measured in the same process (before and after, the faster kept).

With ``--old-tree`` the older tree's ``rclrec/models/sasrec.py`` and ``layers.py`` build a
second encoder with the same weights; the two take turns batch by batch (which one goes first
alternates), each step seeded the same, and every step's output and parameter gradients are
compared: "identical" means bit for bit. ``--old-threads N`` runs the old encoder (today's,
copied, without ``--old-tree``) at N threads, to compare thread counts the same way. Besides
the medians over rounds, each batch's fastest round is summed per variant (a shared machine
only adds time, so the minimum is the steadiest estimate of a small difference).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from profile_step import epoch_flops, peak_matmul_rate
from result_file import write_result
from torch.profiler import ProfilerActivity, profile, record_function
from tree_modules import load_module

from rclrec.config import load_config
from rclrec.data.batches import batch_order, trim_padding
from rclrec.data.dataset import PAD
from rclrec.data.split import leave_one_out
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve


def old_encoder_class(tree: Path) -> type:
    """SASRec of an older tree, its ``layers.py`` loaded beside today's (same weight names)."""
    today = sys.modules["rclrec.models.layers"]
    old_layers = load_module("old_layers", tree / "rclrec/models/layers.py")
    sys.modules["rclrec.models.layers"] = old_layers
    try:  # the old sasrec.py imports its layers by their usual name
        return load_module("old_sasrec", tree / "rclrec/models/sasrec.py").SASRec
    finally:
        sys.modules["rclrec.models.layers"] = today


def encoder_step(encoder: torch.nn.Module, seqs: torch.Tensor, seed: int
                 ) -> tuple[float, float, torch.Tensor]:
    """Forward and backward of one batch: (CPU s, wall s, output)."""
    encoder.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    cpu, wall = time.process_time(), time.perf_counter()
    hidden = encoder(seqs)
    hidden.backward(upstream_gradient(hidden))
    return time.process_time() - cpu, time.perf_counter() - wall, hidden.detach()


def upstream_gradient(hidden: torch.Tensor) -> torch.Tensor:
    """A fixed gradient of the encoder's output (values do not change the cost)."""
    b, length, d = hidden.shape
    return torch.linspace(-1e-3, 1e-3, b * length * d, dtype=hidden.dtype).view(b, length, d)


def same_step(a: tuple, b: tuple) -> bool:
    """Bit-identical outputs and parameter gradients."""
    (out_a, grads_a), (out_b, grads_b) = a, b
    return torch.equal(out_a, out_b) and all(
        torch.equal(x, y) for x, y in zip(grads_a, grads_b, strict=True))


def largest_gap(a: tuple, b: tuple) -> float:
    """Largest absolute difference of outputs and gradients, relative to each tensor's scale."""
    (out_a, grads_a), (out_b, grads_b) = a, b
    gaps = [(x - y).abs().max() / x.abs().max().clamp_min(1e-30)
            for x, y in zip([out_a, *grads_a], [out_b, *grads_b], strict=True)]
    return float(max(gaps))


def top_ops(encoders: dict, threads: dict, inputs: list[torch.Tensor], rounds: int, rows: int
            ) -> dict[str, list[dict]]:
    """Self CPU time per op of each encoder's steps, the encoders alternating batch by batch
    inside one profile (so both see the same load); per epoch (the rounds' mean)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(rounds):
            for number, seqs in enumerate(inputs):
                for label, encoder in encoders.items():
                    torch.set_num_threads(threads[label])
                    with record_function(f"encoder:{label}"):
                        encoder_step(encoder, seqs, number)
    seconds: dict[str, dict[str, float]] = {label: defaultdict(float) for label in encoders}
    calls: dict[str, dict[str, int]] = {label: defaultdict(int) for label in encoders}
    for event in prof.events():
        root = event
        while root.cpu_parent is not None:
            root = root.cpu_parent
        label = root.name.removeprefix("encoder:")
        if label in encoders and event is not root:
            seconds[label][event.name] += event.self_cpu_time_total / 1e6 / rounds
            calls[label][event.name] += 1
    out = {}
    for label in encoders:
        total = sum(seconds[label].values())
        ranked = sorted(seconds[label].items(), key=lambda kv: kv[1], reverse=True)[:rows]
        out[label] = [{"op": op, "self_seconds": t, "share": t / total,
                       "calls": calls[label][op] // rounds} for op, t in ranked]
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="epochs of encoder steps, each timed")
    p.add_argument("--old-tree", type=Path, default=None)
    p.add_argument("--old-threads", type=int, default=None,
                   help="threads of the old encoder (today's copied, without --old-tree)")
    p.add_argument("--ops", type=int, default=30, help="rows of the op table (0: no profile)")
    p.add_argument("--profile-rounds", type=int, default=2, help="epochs in the op profile")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(o.split("=", 1) for o in args.overrides)
    cfg = resolve(load_config(overrides={"method": "sasrec", "data.dataset": args.dataset,
                                         **overrides}))
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    lengths = (instances.inputs != PAD).sum(axis=1)
    batches = batch_order(lengths, cfg.train.batch_size, np.random.default_rng(0))
    inputs = [torch.from_numpy(trim_padding(instances.inputs[i])[0]) for i in batches]
    flops = epoch_flops(cfg, instances, batches, split.num_items)["encoder"]

    torch.manual_seed(0)
    encoders = {"new": build_encoder(cfg.encoder, split.num_items).train()}
    if args.old_tree:
        old = old_encoder_class(args.old_tree)(cfg.encoder, split.num_items).train()
        old.load_state_dict(encoders["new"].state_dict())
        encoders = {"old": old, **encoders}
    elif args.old_threads:
        encoders = {"old": copy.deepcopy(encoders["new"]), **encoders}
    threads = {"old": args.old_threads or args.threads, "new": args.threads}
    peak_before = peak_matmul_rate(torch.float32)
    for label, encoder in encoders.items():  # warm-up: first touches, allocator
        torch.set_num_threads(threads[label])
        for number, seqs in enumerate(inputs[:8]):
            encoder_step(encoder, seqs, number)

    rounds, identical, gap = [], True, 0.0
    fastest = {label: [float("inf")] * len(inputs) for label in encoders}  # CPU s per batch
    fastest_wall = {label: [float("inf")] * len(inputs) for label in encoders}
    for round_no in range(1, args.rounds + 1):
        totals = {label: [0.0, 0.0] for label in encoders}
        for number, seqs in enumerate(inputs):
            order = list(encoders) if (number + round_no) % 2 else list(reversed(encoders))
            results = {}
            for label in order:
                torch.set_num_threads(threads[label])
                cpu, wall, out = encoder_step(encoders[label], seqs, number)
                totals[label][0] += cpu
                totals[label][1] += wall
                fastest[label][number] = min(fastest[label][number], cpu)
                fastest_wall[label][number] = min(fastest_wall[label][number], wall)
                results[label] = (out, [q.grad for q in encoders[label].parameters()])
            if len(results) == 2:
                identical &= same_step(results["old"], results["new"])
                gap = max(gap, largest_gap(results["old"], results["new"]))
        rounds.append({label: {"cpu_seconds": c, "wall_seconds": w}
                       for label, (c, w) in totals.items()})
        print(f"round {round_no}: " + ", ".join(
            f"{label} {c:.2f} CPU s ({w:.2f} wall)" for label, (c, w) in totals.items()),
            flush=True)
    torch.set_num_threads(args.threads)
    peak_after = peak_matmul_rate(torch.float32)
    peak_wall, peak_cpu = max(peak_before[0], peak_after[0]), max(peak_before[1], peak_after[1])
    floor_wall, floor_cpu = flops / peak_wall, flops / peak_cpu
    print(f"{args.dataset}: {len(inputs)} batches, {args.threads} threads; encoder FLOPs per "
          f"epoch {flops:.3g}; peak float32 matmul {peak_wall / 1e9:.0f} GFLOP/s wall, "
          f"{peak_cpu / 1e9:.0f} per CPU s; floor {floor_wall:.3f} s wall, {floor_cpu:.3f} CPU s")
    summary = {}
    for label in encoders:
        cpu = statistics.median(r[label]["cpu_seconds"] for r in rounds)
        wall = statistics.median(r[label]["wall_seconds"] for r in rounds)
        best, best_wall = sum(fastest[label]), sum(fastest_wall[label])
        summary[label] = {"cpu_seconds": cpu, "wall_seconds": wall,
                          "cpu_over_floor": cpu / floor_cpu, "wall_over_floor": wall / floor_wall,
                          "fastest_cpu_seconds": best, "fastest_wall_seconds": best_wall}
        print(f"  {label} ({threads[label]} threads): encoder forward + backward per epoch "
              f"{wall:.2f} s wall = "
              f"{wall / floor_wall:.1f}x the floor, {cpu:.2f} CPU s = {cpu / floor_cpu:.1f}x "
              f"(medians of {args.rounds} rounds); each batch's fastest round summed: "
              f"{best:.2f} CPU s = {best / floor_cpu:.1f}x, {best_wall:.2f} s wall = "
              f"{best_wall / floor_wall:.1f}x")
    if "old" in encoders:
        for kind in ("cpu_seconds", "wall_seconds"):
            ratios = [r["old"][kind] / r["new"][kind] for r in rounds]
            summary[f"speed_up_{kind}"] = {"median": statistics.median(ratios),
                                           "min": min(ratios), "max": max(ratios)}
            print(f"  speed-up old / new, {kind}: x{statistics.median(ratios):.3f} "
                  f"[{min(ratios):.3f}-{max(ratios):.3f}]")
        summary["speed_up_fastest_cpu"] = sum(fastest["old"]) / sum(fastest["new"])
        summary["speed_up_fastest_wall"] = sum(fastest_wall["old"]) / sum(fastest_wall["new"])
        print(f"  speed-up old / new, each batch's fastest round: "
              f"x{summary['speed_up_fastest_cpu']:.3f} CPU s, "
              f"x{summary['speed_up_fastest_wall']:.3f} wall s")
        print(f"  outputs and gradients bit-identical at every step: {identical}; largest "
              f"relative gap {gap:.2e}")
    ops = top_ops(encoders, threads, inputs, args.profile_rounds, args.ops) if args.ops else {}
    for label in ops:
        total = ops[label][0]["self_seconds"] / ops[label][0]["share"]
        print(f"top ops, {label} encoder, one epoch of forward + backward (self CPU time, "
              f"mean of {args.profile_rounds} profiled epochs; all ops {total:.2f} s):")
        for o in ops[label]:
            print(f"  {o['op']:<45} {o['self_seconds']:7.3f} s  {o['share']:5.1%}  "
                  f"x{o['calls']}")
    write_result(args.name or f"encoder_profile_{args.dataset}",
                 {"dataset": args.dataset, "threads": threads, "overrides": overrides,
                  "batches": len(inputs), "encoder_flops": flops,
                  "peak_flops_wall": peak_wall, "peak_flops_per_cpu_second": peak_cpu,
                  "floor_wall_seconds": floor_wall, "floor_cpu_seconds": floor_cpu,
                  "old_tree": str(args.old_tree) if args.old_tree else None,
                  "rounds": rounds, "summary": summary,
                  "bit_identical": identical if args.old_tree else None,
                  "largest_relative_gap": gap if args.old_tree else None, "ops": ops})
    return 0


if __name__ == "__main__":
    sys.exit(main())
