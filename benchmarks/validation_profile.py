"""Where one full-ranking validation pass spends its time, part by part.

    python benchmarks/validation_profile.py --dataset beauty --threads 2 --rounds 3

Runs the parts of ``evaluate_ranking`` one after the other, with the library's own functions
and the same chunks and row blocks, each timed on its own (wall and process CPU seconds), then
the whole ``evaluate_ranking`` call; "the rest" is the whole minus the parts (Python loops,
the metrics, copies between the parts). An untrained seeded encoder: the time does not depend
on the weights.

    padding        every validation input in one flat array, left-padded to max_len (the
                   encoder's windows)
    encoder        the last-position state of every user, in length-sorted chunks (those of
                   iter_last_states, consecutive ones of one width joined: equal_width_chunks)
    histories      each chunk's left-padded history matrix (the items left out of the ranking)
    products       the score products, in the row blocks rank_targets cuts, into its reused buffer
    counting       block_counts on those blocks (items above / tied with each target, the
                   history taken back)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from functools import partial

import torch
from ranking_timing import untrained_sasrec
from result_file import write_result

from rclrec.data.batches import FlatHistories
from rclrec.data.dataset import PAD
from rclrec.eval import ranking
from rclrec.models.encode import iter_last_states

PARTS = ("padding", "encoder", "histories", "products", "counting")


class Clock:
    """Adds wall and CPU seconds to named parts."""

    def __init__(self):
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def timed(self, part: str, fn, *args):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.wall[part] += time.perf_counter() - start
        self.cpu[part] += time.process_time() - cpu
        return out


def row_blocks(b: int, n: int) -> int:
    """How many near-equal row blocks rank_targets cuts b users into (n items, whole rows)."""
    return -(-b // ranking.rows_per_block(n, torch.device("cpu")))


@torch.no_grad()
def parts_of_a_pass(encoder, inputs, targets, max_len: int, batch_size: int) -> Clock:
    clock = Clock()
    flat = clock.timed("padding", FlatHistories, inputs)
    padded = clock.timed("padding", flat.left_pad, None, max_len)
    table = encoder.item_table
    # the products' reused buffer and the table they read, as in the library
    scratch, item_columns = ranking.score_scratch(table), ranking.item_columns(table)
    chunks = partial(ranking.equal_width_chunks, size=batch_size)
    states = iter_last_states(encoder, padded, chunks, positions=ranking.CPU_ENCODER_POSITIONS)
    while True:
        step = clock.timed("encoder", next, states, None)
        if step is None:
            break
        rows, h = step
        y = torch.from_numpy(targets[rows])

        columns = torch.from_numpy(clock.timed("histories", flat.left_pad, rows))
        blocks = row_blocks(len(rows), table.shape[0])
        for s, c, t in zip(h.tensor_split(blocks), columns.tensor_split(blocks),
                           y.tensor_split(blocks), strict=True):
            scores = clock.timed("products", ranking._scores, s, table, scratch,
                                 item_columns)
            clock.timed("counting", ranking.block_counts, scores, PAD,
                        scores.gather(1, t[:, None]), c, t)
    return clock


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg, split, encoder = untrained_sasrec(args.dataset)
    encoder.eval()
    inputs, targets = split.valid_inputs(), split.valid_targets
    max_len, batch = cfg.encoder.max_len, cfg.train.eval_batch_size
    ranking.evaluate_ranking(encoder, inputs, targets, max_len, batch_size=batch)  # warm-up
    rows = []
    for round_no in range(args.rounds):
        # The whole pass and the parts take turns at going first.
        for part in ("whole", "parts") if round_no % 2 else ("parts", "whole"):
            if part == "parts":
                clock = parts_of_a_pass(encoder, inputs, targets, max_len, batch)
                continue
            start, cpu = time.perf_counter(), time.process_time()
            ranking.evaluate_ranking(encoder, inputs, targets, max_len, batch_size=batch)
            whole, whole_cpu = time.perf_counter() - start, time.process_time() - cpu
        row = {"wall": dict(clock.wall), "cpu": dict(clock.cpu),
               "whole_wall": whole, "whole_cpu": whole_cpu}
        row["wall"]["the rest"] = whole - sum(clock.wall.values())
        row["cpu"]["the rest"] = whole_cpu - sum(clock.cpu.values())
        rows.append(row)
    print(f"{len(inputs)} users, {split.num_items} items, {args.threads} threads, "
          f"medians of {args.rounds} rounds")
    print("| part | wall s | share | CPU s | share |\n|---|---|---|---|---|")
    whole = statistics.median(r["whole_wall"] for r in rows)
    whole_cpu = statistics.median(r["whole_cpu"] for r in rows)
    for part in (*PARTS, "the rest"):
        w = statistics.median(r["wall"][part] for r in rows)
        c = statistics.median(r["cpu"][part] for r in rows)
        print(f"| {part} | {w:.3f} | {w / whole:.0%} | {c:.3f} | {c / whole_cpu:.0%} |")
    print(f"| whole evaluate_ranking | {whole:.3f} | | {whole_cpu:.3f} | |")
    write_result(args.name or f"validation_profile_{args.dataset}",
                 {"dataset": args.dataset, "threads": args.threads, "users": len(inputs),
                  "rounds": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
