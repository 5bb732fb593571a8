"""Where one RCL training step spends its time, phase by phase, against a SASRec step.

    python benchmarks/profile_rcl_step.py --dataset beauty --threads 2 --steps 20

The step is the trainer's own (``Trainer.loss_step``, backward, optimizer); its parts are timed
by wrapping the functions they call, so the same script times any version of the code that
calls them by these names. A timer's time excludes the timers nested in it: "RCL's own
bookkeeping" is what ``RCL.extra_loss`` spends outside the named calls. An encoder call made
inside the method is counted as the positives' encoder pass; one made by the trainer as the
centres' (or the merged) pass; likewise for the recommendation loss. The CPU runs
synchronously, so the clock is exact per phase.

Also measured: the CE's cost as one call over the centres' and the positives' rows against
two calls (what merging the two CE calls could save), and how wide a merged encoder pass
would be (padding) against today's length-sorted chunks.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
from profile_step import ROOT
from result_file import write_result

import rclrec.methods.rcl as rcl_module
import rclrec.train.trainer as trainer_module
from rclrec.config import load_config
from rclrec.data.batches import (
    batch_order,
    cost_balanced_chunks,
    length_sorted_chunks,
    prefix_arrays,
    trim_padding,
)
from rclrec.data.dataset import PAD
from rclrec.data.split import leave_one_out
from rclrec.losses.recommendation import cross_entropy_loss
from rclrec.methods import method_class
from rclrec.methods.rcl import CPU_CALL_COST
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.trainer import Trainer


class PhaseClock:
    """Exclusive time per label: a timed call's own time minus that of timed calls inside it."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.step: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [label, time spent in nested timers]

    @contextmanager
    def phase(self, label: str):
        self.stack.append([label, 0.0])
        start = self.clock()
        try:
            yield
        finally:
            elapsed = self.clock() - start
            _, nested = self.stack.pop()
            self.step[label] += elapsed - nested
            if self.stack:
                self.stack[-1][1] += elapsed

    def inside(self, label: str) -> bool:
        return any(frame[0] == label for frame in self.stack)

    def wrap(self, fn, label):
        """``fn`` timed under ``label`` (a string, or a function of the clock giving one)."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.phase(label(self) if callable(label) else label):
                return fn(*args, **kwargs)
        return timed


EXTRA = "RCL's own bookkeeping (extra_loss)"
FIXED = "rcl, fixed chunks"


def by_caller(in_method: str, in_trainer: str):
    return lambda clock: in_method if clock.inside(EXTRA) else in_trainer


def instrument_modules(clock: PhaseClock) -> None:
    """Wrap the functions the step calls by name, in the modules that call them (once)."""
    for module in (trainer_module, rcl_module):
        module.recommendation_loss = clock.wrap(module.recommendation_loss, by_caller(
            "positives' CE", "centres' CE (trainer)"))
    named = {"prefix_arrays": "positives' input arrays", "trim_padding": "positives' input arrays",
             "length_sorted_chunks": "positives' input arrays",
             "pair_similarity": "similarity weights (index look-up)",
             "relative_contrastive_loss": "contrastive loss (forward)"}
    for name, label in named.items():
        if hasattr(rcl_module, name):
            setattr(rcl_module, name, clock.wrap(getattr(rcl_module, name), label))


def instrument(clock: PhaseClock, trainer: Trainer) -> None:
    """Wrap one trainer's encoder, method and batching."""
    method, encoder = trainer.method, trainer.encoder
    encoder.forward = clock.wrap(encoder.forward, by_caller(
        "positives' encoder passes", "centres' encoder pass (trainer)"))
    method.extra_loss = clock.wrap(method.extra_loss, EXTRA)
    if hasattr(method, "sample"):
        method.sample = clock.wrap(method.sample, "sampling positives")
    trainer.make_batch = clock.wrap(trainer.make_batch, "batching")


def build(method: str, dataset: str, overrides: dict) -> Trainer:
    cfg = resolve(load_config(overrides={"method": method, "data.dataset": dataset,
                                         **overrides}))
    torch.manual_seed(0)
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    device = torch.device("cpu")
    m = method_class(method)(cfg, split, instances, device)
    encoder = build_encoder(cfg.encoder, split.num_items, m.extra_tokens).to(device)
    trainer = Trainer(cfg, split, instances, encoder, m, device, ROOT / "benchmarks" / ".work",
                      show_progress=False)
    m.setup(encoder)
    return trainer


def timed_step(clock: PhaseClock, trainer: Trainer, index: np.ndarray) -> dict[str, float]:
    """One training step of ``trainer``, its time per phase (ms)."""
    clock.step = defaultdict(float)
    start = clock.clock()
    with clock.phase("loss_step, other"):
        loss, _ = trainer.loss_step(trainer.make_batch(index))
    with clock.phase("backward"):
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with clock.phase("optimizer"):
        trainer.optimizer.step()
    clock.step["step (total)"] = clock.clock() - start
    return {label: seconds * 1e3 for label, seconds in clock.step.items()}


def ce_merge_cost(trainer: Trainer, batches: list[np.ndarray], repeats: int = 3) -> dict:
    """The CE of the centres' and the positives' rows as two calls against one call over the
    same rows (value + gradients; alternated, best of ``repeats``): the most a single CE call
    could save, whatever the weighting."""
    method, encoder = trainer.method, trainer.encoder
    two = one = 0.0
    for index in batches:
        batch = trainer.make_batch(index)
        with torch.no_grad():
            hidden = encoder(batch.inputs)
        keep = batch.targets != PAD
        centre_states, centre_targets = hidden[keep], batch.targets[keep]
        strong, weak = method.sample(batch.users[np.flatnonzero(batch.whole)])
        units = np.concatenate([strong[strong >= 0], weak[weak >= 0]])
        with torch.no_grad():
            _, pos_states, pos_targets = method.encode(encoder, units, with_targets=True)
        states = [s.detach().requires_grad_() for s in (centre_states, pos_states)]
        table = encoder.item_table.detach().requires_grad_()
        best_two = best_one = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            (cross_entropy_loss(states[0], centre_targets, table)
             + cross_entropy_loss(states[1], pos_targets, table)).backward()
            best_two = min(best_two, time.perf_counter() - start)
            start = time.perf_counter()
            cross_entropy_loss(torch.cat(states), torch.cat([centre_targets, pos_targets]),
                               table).backward()
            best_one = min(best_one, time.perf_counter() - start)
        two += best_two
        one += best_one
    return {"two_calls_ms": two / len(batches) * 1e3, "one_call_ms": one / len(batches) * 1e3}


def padded(lengths: np.ndarray) -> int:
    """Positions of one pass over rows of these lengths, padded to the longest."""
    return int(lengths.max()) * len(lengths) if len(lengths) else 0


def chunked(lengths: np.ndarray, chunk: int) -> int:
    """Positions of length-sorted chunks of ``chunk`` rows, each padded to its longest."""
    ordered = np.sort(lengths)
    return sum(padded(ordered[i:i + chunk]) for i in range(0, len(ordered), chunk))


def padding_widths(trainer: Trainer, batches: list[np.ndarray], chunk: int = 128) -> dict:
    """Encoder positions (rows x width) per step: today's centre batch + the positives'
    length-sorted chunks, against one pass over both padded to the longest row, and against
    the centres and positives sorted together into chunks."""
    method = trainer.method
    lengths = trainer.lengths
    today = one_pass = together = balanced = 0
    real = sequences = repeats = calls_today = calls_balanced = 0
    for index in batches:
        centre = np.minimum(lengths[index], method.max_len)
        strong, weak = method.sample(trainer.instances.users[index][
            trainer.instances.whole[index]])
        units = np.concatenate([strong[strong >= 0], weak[weak >= 0]])
        # Sequences encoded twice in the step: a positive drawn twice, or one that is also a
        # centre of the batch (each gets its own dropout mask).
        every = np.concatenate([method.whole_unit[trainer.instances.users[index]], units])
        sequences += len(every)
        repeats += len(every) - len(np.unique(every))
        pos = np.minimum(method.unit_end[units], method.max_len)
        today += padded(centre) + chunked(pos, chunk)
        calls_today += 1 + -(-len(pos) // chunk)
        plan = cost_balanced_chunks(pos, CPU_CALL_COST)
        balanced += padded(centre) + sum(padded(pos[part]) for part in plan)
        calls_balanced += 1 + len(plan)
        both = np.concatenate([centre, pos])
        one_pass += padded(both)
        together += chunked(both, chunk)
        real += int(both.sum())
    n = len(batches)
    return {"repeated_sequences_share": repeats / sequences, "real_positions": real / n,
            "today_positions": today / n, "today_calls": calls_today / n,
            "cost_balanced_positions": balanced / n, "cost_balanced_calls": calls_balanced / n,
            "one_pass_positions": one_pass / n, "sorted_together_positions": together / n}


def encoder_layouts(trainer: Trainer, batches: list[np.ndarray], chunks=(128, 64, 32),
                    call_costs=(128, 256, 512), repeats: int = 3,
                    clock=time.process_time) -> dict[str, float]:
    """Encoder forward + backward (ms per step on ``clock``, median over steps of
    the best of ``repeats``, layouts alternated) of one step's centres and positives: the
    centres' batch, then the positives in length-sorted chunks of fixed size (128: the layout
    before this work) or cut by ``cost_balanced_chunks`` (``call_costs``); and the centres
    sorted into the positives' chunks (one merged set of passes)."""
    method, encoder = trainer.method, trainer.encoder
    inst = trainer.instances
    plans = {f"chunks of {c}": functools.partial(fixed_chunks, size=c) for c in chunks}
    plans.update({f"cost-balanced, call cost {c}": functools.partial(cost_balanced_chunks,
                                                                     call_cost=c)
                  for c in call_costs})
    results: dict[str, list[float]] = defaultdict(list)
    for index in batches:
        users = inst.users[index][inst.whole[index]]
        strong, weak = method.sample(users)
        units = np.concatenate([strong[strong >= 0], weak[weak >= 0]])
        positives = prefix_arrays(method.split.train, method.unit_user[units],
                                  method.unit_end[units], method.max_len, True)[0]
        centres = inst.inputs[index]
        layouts = {f"centres + positives in {name}": ([centres], positives, plan)
                   for name, plan in plans.items()}
        layouts.update({f"centres and positives sorted together, {name}":
                        ([], np.concatenate([centres, positives]), plan)
                        for name, plan in plans.items() if "128" not in name})
        best = defaultdict(lambda: float("inf"))
        for _ in range(repeats):
            for name, (whole, rows, plan) in layouts.items():
                lengths = (rows != PAD).sum(1)
                parts = whole + [rows[part] for part in plan(lengths)]
                parts = [torch.from_numpy(trim_padding(part)[0]) for part in parts]
                start = clock()
                sum(encoder(part).sum() for part in parts).backward()
                best[name] = min(best[name], clock() - start)
        for name, seconds in best.items():
            results[name].append(seconds * 1e3)
    return {name: statistics.median(v) for name, v in results.items()}


def fixed_chunks(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    return length_sorted_chunks(lengths, size)


def summarise(phases: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {k: {"median_ms": statistics.median(v), "mean_ms": statistics.fmean(v),
                "min_ms": min(v), "max_ms": max(v)} for k, v in phases.items()}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="steps timed per method")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall seconds, or the process's CPU seconds (which load inflates less)")
    p.add_argument("--layout-steps", type=int, default=10,
                   help="steps of the encoder layout comparison")
    p.add_argument("--fixed-chunks", type=int, default=0,
                   help="also time RCL with its positives in chunks of this many rows")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(o.split("=", 1) for o in args.overrides)
    out: dict = {"dataset": args.dataset, "threads": args.threads, "clock": args.clock,
                 "overrides": overrides}
    trainers = {m: build(m, args.dataset, overrides) for m in ("sasrec", "rcl")}
    if args.fixed_chunks:
        # RCL again with the positives in fixed chunks (128: the layout before the plan).
        fixed = build("rcl", args.dataset, overrides)
        fixed.method.chunk_plan = functools.partial(fixed_chunks, size=args.fixed_chunks)
        trainers[FIXED] = fixed
    clock = PhaseClock(time.process_time if args.clock == "cpu" else time.perf_counter)
    instrument_modules(clock)
    phases: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in trainers}
    for trainer in trainers.values():
        instrument(clock, trainer)
        trainer.encoder.train()
    # The same batches for both methods (same lengths, same seed), the two taking turns step
    # by step so that both see the same load; the first step of each warms up.
    batches = batch_order(trainers["rcl"].lengths, trainers["rcl"].cfg.train.batch_size,
                          np.random.default_rng(0))
    for step, index in enumerate(batches[:args.steps + 1]):
        for m, trainer in trainers.items():
            times = timed_step(clock, trainer, index)
            if step:
                for label, ms in times.items():
                    phases[m][label].append(ms)
    for m in trainers:
        out[m] = {"steps_per_epoch": len(batches), "phases": summarise(phases[m])}
    # Per-step ratios of neighbouring runs (the load drifts less within a step than a run).
    total = {m: np.array(phases[m]["step (total)"]) for m in trainers}
    out["step_ratios_median"] = {f"{a} / {b}": float(np.median(total[a] / total[b]))
                                 for a, b in (("rcl", "sasrec"), (FIXED, "sasrec"),
                                              (FIXED, "rcl")) if a in total}
    rcl = trainers["rcl"]
    batches = batch_order(rcl.lengths, rcl.cfg.train.batch_size, np.random.default_rng(1))
    out["ce_merge"] = ce_merge_cost(rcl, batches[:5])
    out["padding"] = padding_widths(rcl, batches)
    out["encoder_layouts_ms"] = encoder_layouts(rcl, batches[:args.layout_steps],
                                                clock=clock.clock)
    sasrec_step = out["sasrec"]["phases"]["step (total)"]["mean_ms"]
    step = out["rcl"]["phases"]["step (total)"]["mean_ms"]
    print(f"{args.dataset}, {args.threads} threads, {args.steps} steps each, {args.clock} clock "
          f"(means per step)")
    print(f"SASRec step {sasrec_step:.1f} ms, RCL step {step:.1f} ms (x{step / sasrec_step:.2f})")
    for pair, ratio in out["step_ratios_median"].items():
        print(f"step time {pair}: x{ratio:.2f} (median of per-step ratios)")
    for m in trainers:
        print(f"{m}:")
        rows = sorted(out[m]["phases"].items(), key=lambda kv: -kv[1]["mean_ms"])
        total = out[m]["phases"]["step (total)"]["mean_ms"]
        for label, s in rows:
            print(f"  {label:<42} {s['mean_ms']:7.1f} ms  {s['mean_ms'] / total:6.1%}  "
                  f"(median {s['median_ms']:.1f})")
    ce = out["ce_merge"]
    print(f"CE, centres + positives: two calls {ce['two_calls_ms']:.1f} ms, one call "
          f"{ce['one_call_ms']:.1f} ms per step")
    pad = out["padding"]
    print(f"sequences encoded more than once in a step: {pad['repeated_sequences_share']:.2%}")
    print(f"encoder positions per step (whole epoch): real {pad['real_positions']:.0f}, chunks "
          f"of 128 {pad['today_positions']:.0f} ({pad['today_calls']:.1f} calls), cost-balanced "
          f"{pad['cost_balanced_positions']:.0f} ({pad['cost_balanced_calls']:.1f} calls), "
          f"one merged pass {pad['one_pass_positions']:.0f}, "
          f"centres and positives sorted together in chunks {pad['sorted_together_positions']:.0f}")
    print(f"encoder forward + backward per step, {args.clock} ms (median of steps, best of 3):")
    for name, ms in out["encoder_layouts_ms"].items():
        print(f"  {name:<64} {ms:7.1f}")
    write_result(args.name or f"profile_rcl_step_{args.dataset}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
