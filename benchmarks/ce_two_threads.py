"""The full-softmax CE on two threads: each op of a block split between the threads (the code
before issue 15's session 4) against each thread taking its own blocks end to end
(``BLOCKS_PER_THREAD``), in one process, taking turns.

    python benchmarks/ce_two_threads.py --threads 2

Three parts, all at ``--threads``:

1. One block of a Beauty CE (86 positions x 12,101 items), op by op: on one thread, split
   between the threads, and two blocks at once on two workers of one thread each (per block).
2. One CE call (value and both gradients) of ``--positions`` positions, each variant in turn
   (the order rotates every round): the two ways of sharing the blocks at several block sizes
   (``CHUNK_ELEMENTS``), and a prototype third way ("batched": ``batched_blocks_ce``), as
   wall ms, the ratio of today's default to each (median and range
   over rounds) and the multiple of the CE's floor (6 P N d FLOPs at the peak matmul rate).
3. Whole SASRec training steps, every batch of a Beauty epoch, the two ways alternated on every
   batch (two copies of the same initial model, Adam each; both at the library's block size
   unless ``--block-elements`` / ``--block-elements-ops`` name others): wall and CPU
   seconds per epoch,
   the ratio per round, and each as a multiple of the epoch's float32 floor
   (``profile_step.epoch_flops`` at the peak matmul rate).

4. The CPU time main's OpenMP helper threads spend spinning after one parallel op (while the
   CE's workers run, such a spin competes with them for the cores).

The peak is the best 2048^3 float32 matmul of the process at ``--threads``, measured before and
after. Wall times mean something only on an idle machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from interleaved_steps import alternated_epoch, sasrec_setup, sasrec_trainers, step
from profile_step import epoch_flops, peak_matmul_rate
from result_file import write_result

from rclrec.cpu_workers import run_one_thread_each
from rclrec.losses import recommendation

TODAY = ("ops", 1 << 20)  # how the blocks were shared before, and the block size


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def helper_spin_ms(samples: int = 5) -> list[float]:
    """CPU ms that the process's other threads (the OpenMP helpers) burn in the 0.2 s after one
    parallel op of the calling thread, while it sleeps: how long they spin waiting for the
    next op (in the CE with blocks per thread, time taken from the two workers)."""
    me = str(threading.get_native_id())

    def others_ns() -> int:
        total = 0
        for task in os.listdir("/proc/self/task"):
            if task != me:
                with open(f"/proc/self/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
        return total

    x = torch.zeros(1 << 20)
    out = []
    for _ in range(samples):
        time.sleep(0.2)
        before = others_ns()
        x.add_(1)
        time.sleep(0.2)
        out.append((others_ns() - before) / 1e6)
    return out


def block_profile(threads: int, num_items: int, dim: int, reps: int) -> dict[str, dict]:
    """Wall microseconds per block of each op of the CE's loop."""
    rows = recommendation.chunk_rows(num_items)
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(num_items, dim, generator=gen) * 0.1
    table_t = table.T.contiguous()

    def block_ops() -> dict[str, Callable[[], object]]:
        s = torch.randn(rows, dim, generator=gen)
        own = (torch.arange(rows), torch.randint(0, num_items, (rows,), generator=gen))
        block, grad_states = torch.empty(rows, num_items), torch.empty(rows, dim)
        grad_table_t, probability = torch.zeros(dim, num_items), torch.empty(rows)
        return {"scores s E^T": lambda: torch.mm(s, table_t, out=block),
                "softmax in place": lambda: torch.softmax(block, dim=1, out=block),
                "target read": lambda: probability.copy_(block[own]),
                "minus one-hot": lambda: block.index_put_(own, torch.tensor(-1.0),
                                                          accumulate=True),
                "G E": lambda: torch.mm(block, table, out=grad_states),
                "d E^T += s^T G": lambda: grad_table_t.addmm_(s.T, block)}

    mine, other = block_ops(), block_ops()

    def repeat(fn: Callable[[], object], clock=time.perf_counter) -> Callable[[], float]:
        def timed() -> float:
            start = clock()
            for _ in range(reps):
                fn()
            return (clock() - start) / reps
        return timed

    out = {}
    for name in mine:
        one, one_cpu, split, pair = [], [], [], []
        for _ in range(5):
            torch.set_num_threads(1)
            one.append(repeat(mine[name])())
            one_cpu.append(repeat(mine[name], time.process_time)())
            torch.set_num_threads(threads)
            split.append(repeat(mine[name])())
            start = time.perf_counter()
            run_one_thread_each([repeat(mine[name]), repeat(other[name])])
            pair.append((time.perf_counter() - start) / reps / 2)
        out[name] = {"one_thread_us": 1e6 * min(one), "one_thread_cpu_us": 1e6 * min(one_cpu),
                     "split_us": 1e6 * min(split),
                     "two_workers_us_per_block": 1e6 * min(pair)}
    return out


def batched_blocks_ce(states: torch.Tensor, table: torch.Tensor, classes: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A prototype, not in the library: one block per thread as one batch of the batched ops
    (``bmm``, ``softmax`` over the last dimension, ``baddbmm_``), which torch splits between
    its threads by batch item, so each thread keeps to its own block without worker threads,
    but all meet at the end of each op. The CE's mean loss and both gradients (``table`` without
    the padding row, ``classes`` 0-based); a tail of fewer rows than a batch runs block by
    block with every op split."""
    count, num_items = len(classes), table.shape[0]
    rows, threads = recommendation.chunk_rows(num_items), torch.get_num_threads()
    table_t = table.T.contiguous()
    probability, grad_states = states.new_empty(count), torch.empty_like(states)
    grad_tables_t = torch.zeros(threads, *table_t.shape)
    blocks = states.new_empty(threads, rows, num_items)
    whole = count // (threads * rows) * threads * rows
    for start in range(0, whole, threads * rows):
        done = slice(start, start + threads * rows)
        s = states[done].view(threads, rows, -1)
        torch.bmm(s, table_t.expand(threads, *table_t.shape), out=blocks)
        torch.softmax(blocks, dim=2, out=blocks)
        flat = blocks.view(threads * rows, num_items)
        own = (torch.arange(threads * rows), classes[done])
        probability[done] = flat[own]
        flat[own] -= 1
        torch.bmm(blocks, table.expand(threads, *table.shape),
                  out=grad_states[done].view(threads, rows, -1))
        grad_tables_t.baddbmm_(s.transpose(1, 2), blocks)
    recommendation._softmax_blocks(states, table, table_t, classes, range(whole, count), rows,
                                   probability, None, grad_states, grad_tables_t[0])
    grad_table_t = grad_tables_t.sum(0)
    return (probability.log().neg_().sum() / count, grad_states.div_(count),
            grad_table_t.T.div_(count))


def ce_variants(sizes: list[int]) -> dict[str, tuple[str, int]]:
    variants = {f"{mode} 2^{size}": (mode, 1 << size)
                for mode in ("ops", "blocks") for size in sizes}
    variants.setdefault("ops 2^20", TODAY)
    variants["batched 2^20"] = ("batched", 1 << 20)
    return variants


def with_variant(variant: tuple[str, int], fn: Callable[[], object]) -> object:
    mode, elements = variant
    saved = recommendation.BLOCKS_PER_THREAD, recommendation.CHUNK_ELEMENTS
    recommendation.BLOCKS_PER_THREAD = mode == "blocks"
    recommendation.CHUNK_ELEMENTS = elements
    try:
        return fn()
    finally:
        recommendation.BLOCKS_PER_THREAD, recommendation.CHUNK_ELEMENTS = saved


def ce_calls(variants: dict[str, tuple[str, int]], positions: int, num_items: int, dim: int,
             rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of one CE call with both gradients, per variant and round."""
    gen = torch.Generator().manual_seed(1)
    table = (torch.randn(num_items + 1, dim, generator=gen) * 0.1).requires_grad_()
    states = torch.randn(positions, dim, generator=gen).requires_grad_()
    targets = torch.randint(1, num_items + 1, (positions,), generator=gen)

    def call() -> None:
        loss = recommendation.cross_entropy_loss(states, targets, table)
        torch.autograd.grad(loss, (states, table))

    def call_batched() -> None:
        with torch.no_grad():
            batched_blocks_ce(states, table[1:], targets - 1)

    def run(label: str) -> None:
        with_variant(variants[label], call_batched if variants[label][0] == "batched" else call)

    labels = list(variants)
    for label in labels:  # warm-up: buffers, worker threads
        run(label)
    wall: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    for round_no in range(rounds):
        shift = round_no % len(labels)
        for label in labels[shift:] + labels[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            run(label)
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
    return wall, cpu


def whole_steps(args, rounds: int) -> tuple[dict, list[dict], float]:
    """Per round, each way's wall and CPU seconds over every step of an epoch."""
    cfg, split, instances, encoder = sasrec_setup(args.dataset)
    trainers, batches = sasrec_trainers(cfg, split, instances,
                                        {"ops": encoder, "blocks": copy.deepcopy(encoder)})
    ways = {"ops": ("ops", args.block_elements_ops), "blocks": ("blocks", args.block_elements)}
    results, max_loss_gap = [], 0.0
    ce_class = recommendation._FullSoftmaxCrossEntropy

    def way(label: str) -> Callable[[np.ndarray, int], tuple[float, float, float]]:
        return lambda index, number: with_variant(
            ways[label], partial(step, trainers[label], index, number, ce_class))

    for round_no in range(1, rounds + 1):
        totals, gap = alternated_epoch(batches, {label: way(label) for label in ways})
        max_loss_gap = max(max_loss_gap, gap)
        results.append({label: {"cpu_seconds": c, "wall_seconds": w}
                        for label, (c, w) in totals.items()})
        print(f"  round {round_no}: ops {totals['ops'][1]:.2f} s ({totals['ops'][0]:.2f} CPU s),"
              f" blocks {totals['blocks'][1]:.2f} s ({totals['blocks'][0]:.2f} CPU s), "
              f"x{totals['ops'][1] / totals['blocks'][1]:.3f} wall; load {load()}", flush=True)
    num_items = trainers["ops"].encoder.item_table.shape[0] - 1
    flops = epoch_flops(cfg, instances, batches, num_items)
    return flops, results, max_loss_gap


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--positions", type=int, default=1500,
                   help="positions of the CE call of part 2 (a Beauty step's mean)")
    p.add_argument("--sizes", type=int, nargs="+", default=[19, 20, 21],
                   help="log2 of CHUNK_ELEMENTS tried in part 2")
    p.add_argument("--ce-rounds", type=int, default=15)
    p.add_argument("--step-rounds", type=int, default=5, help="epochs of part 3 (0: skip)")
    p.add_argument("--block-elements", type=int, default=recommendation.CHUNK_ELEMENTS,
                   help="CHUNK_ELEMENTS of the blocks-per-thread way in part 3 (default: the "
                        "library's)")
    p.add_argument("--block-elements-ops", type=int, default=1 << 20,
                   help="CHUNK_ELEMENTS of the ops-split way in part 3")
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    num_items, dim = 12101, 64
    print(f"{args.threads} threads, torch {torch.__version__}, load average {load()}")
    peak = [peak_matmul_rate(torch.float32)[0]]
    print(f"peak float32 matmul: {peak[0] / 1e9:.0f} GFLOP/s", flush=True)

    print("1. one block, wall us per block (one thread | split between the threads | "
          "two workers, each its own block), and one thread's CPU us")
    profile = block_profile(args.threads, num_items, dim, reps=20)
    torch.set_num_threads(args.threads)
    for name, row in profile.items():
        print(f"  {name:18s} {row['one_thread_us']:8.0f} | {row['split_us']:8.0f} | "
              f"{row['two_workers_us_per_block']:8.0f}    {row['one_thread_cpu_us']:8.0f}")
    totals = {key: sum(row[key] for row in profile.values()) for key in next(
        iter(profile.values()))}
    print("  {:18s} {:8.0f} | {:8.0f} | {:8.0f}    {:8.0f}".format(
        "block", totals["one_thread_us"], totals["split_us"], totals["two_workers_us_per_block"],
        totals["one_thread_cpu_us"]), flush=True)

    print(f"2. one CE call, {args.positions} positions, value + both gradients, "
          f"{args.ce_rounds} rounds (load {load()})")
    variants = ce_variants(args.sizes)
    times, cpu_times = ce_calls(variants, args.positions, num_items, dim, args.ce_rounds)
    today = next(label for label, v in variants.items() if v == TODAY)
    ce_floor_flops = 6 * args.positions * num_items * dim
    ce_summary = {}
    for label, values in times.items():
        ratios = [a / b for a, b in zip(times[today], values, strict=True)]
        ce_summary[label] = {"wall_ms": spread([1e3 * v for v in values]),
                             "speed_up_over_today": spread(ratios),
                             "cpu_ms": spread([1e3 * v for v in cpu_times[label]]),
                             "floor_multiple": statistics.median(values) * peak[0]
                             / ce_floor_flops}
        s = ce_summary[label]
        print(f"  {label:12s} {s['wall_ms']['median']:7.1f} ms [{s['wall_ms']['min']:.1f}-"
              f"{s['wall_ms']['max']:.1f}]  x{s['speed_up_over_today']['median']:.3f} "
              f"[{s['speed_up_over_today']['min']:.3f}-{s['speed_up_over_today']['max']:.3f}]"
              f"  {s['floor_multiple']:.2f}x its floor; CPU {s['cpu_ms']['median']:.1f} ms",
              flush=True)

    steps = None
    if args.step_rounds:
        print(f"3. whole SASRec steps over an epoch of {args.dataset}, ops (2^"
              f"{args.block_elements_ops.bit_length() - 1}) and blocks (2^"
              f"{args.block_elements.bit_length() - 1}) alternated on every batch")
        flops, rounds, gap = whole_steps(args, args.step_rounds)
        peak.append(peak_matmul_rate(torch.float32)[0])
        floor = flops["total"] / max(peak)
        steps = {"flops": flops, "rounds": rounds, "max_loss_gap": gap, "floor_s": floor}
        for kind in ("wall_seconds", "cpu_seconds"):
            ratios = [r["ops"][kind] / r["blocks"][kind] for r in rounds]
            steps[kind] = {label: statistics.median(r[label][kind] for r in rounds)
                           for label in ("ops", "blocks")}
            steps[kind]["speed_up"] = spread(ratios)
        w = steps["wall_seconds"]
        print(f"  epoch of steps, wall s (median): ops {w['ops']:.2f} = "
              f"{w['ops'] / floor:.2f}x the float32 floor, blocks {w['blocks']:.2f} = "
              f"{w['blocks'] / floor:.2f}x (floor {floor:.2f} s: {flops['total']:.3g} FLOPs at "
              f"{max(peak) / 1e9:.0f} GFLOP/s)")
        print(f"  speed-up of blocks: wall x{w['speed_up']['median']:.3f} "
              f"[{w['speed_up']['min']:.3f}-{w['speed_up']['max']:.3f}], CPU s "
              f"x{steps['cpu_seconds']['speed_up']['median']:.3f}; largest |loss gap| "
              f"{gap:.2e}")
        every = all(r["ops"]["wall_seconds"] > r["blocks"]["wall_seconds"] for r in rounds)
        print(f"  blocks per thread faster in every round: {'yes' if every else 'no'}")
    spin = helper_spin_ms() if os.path.exists("/proc/self/task") else []
    if spin:
        print(f"4. OpenMP helpers' CPU ms after one parallel op: "
              f"{', '.join(f'{x:.1f}' for x in spin)}")
    print(f"peak float32 matmul, before / after: "
          f"{' / '.join(f'{x / 1e9:.0f}' for x in peak)} GFLOP/s; load average {load()}")
    write_result(args.name or f"ce_two_threads_{args.dataset}_{args.threads}threads",
                 {"threads": args.threads, "dataset": args.dataset, "peak_flops": peak,
                  "block_profile": profile, "ce_positions": args.positions,
                  "ce": ce_summary, "ce_times": times, "ce_cpu_times": cpu_times, "steps": steps,
                  "helper_spin_ms": spin, "load_average_end": load()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
