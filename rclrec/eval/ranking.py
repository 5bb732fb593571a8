"""Full ranking: every user's target is ranked against the whole item set."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch

from rclrec.cpu_workers import run_one_thread_each
from rclrec.data.batches import FlatHistories, length_sorted_chunks
from rclrec.data.dataset import PAD
from rclrec.errors import InputError
from rclrec.eval._count_kernel import count_above_and_alike
from rclrec.eval.metrics import metrics_from_ranks
from rclrec.models.encode import iter_last_states, iter_pieces


def mask_unrankable(scores: torch.Tensor, history: torch.Tensor | None = None,
                    keep: torch.Tensor | None = None) -> torch.Tensor:
    """Set to -inf, in place, the padding column and (if given) each row's history items.

    Args:
        scores: (B, num_items + 1) scores.
        history: (B, H) item ids to exclude per row, 0 = padding.
        keep: (B,) an item per row that stays rankable even if in the history (the target).
    """
    scores[:, PAD] = -torch.inf
    if history is not None:
        drop = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, history, True)
        if keep is not None:
            drop.scatter_(1, keep[:, None], False)
        drop[:, PAD] = True
        scores[drop] = -torch.inf
    return scores


class NonFiniteScores(InputError):
    """A model scored some item NaN or infinite: its ranking would be meaningless."""


def target_ranks(scores: torch.Tensor, history: torch.Tensor, targets: torch.Tensor,
                 exclude_history: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """How many rankable items score above, and alike, each target.

    Args:
        scores: (B, num_items + 1) scores; column 0 is padding and never ranked.
        history: (B, H) every input item of each user (not only the last max_len), 0 = padding.
        targets: (B,) target item ids.
        exclude_history: drop the input items from the ranking (the target itself stays, so
            a repeated item is ranked like any other).

    Returns:
        higher, tied: (B,) long each; how many rankable items other than the target score
        strictly higher than it, and exactly as high (metrics_from_ranks breaks those ties).

    Raises:
        NonFiniteScores: some score of a real item is NaN or infinite.
    """
    higher, alike = block_counts(scores, PAD, scores.gather(1, targets[:, None]),
                                 history if exclude_history else None, targets)
    return higher, alike - 1  # minus the target itself


# Scores held at once while ranking (users x items): a larger catalogue is scored in blocks of
# items, so ranking a million items needs no (users, items) matrix.
SCORE_ELEMENTS = 1 << 26
# Users per block product: each product also scores the users' targets (users x users), which
# must stay a small share of it however large the evaluation batch.
BLOCK_ROWS = 4096
# On the CPU a block stays small enough to be reused from the allocator's heap and the caches:
# a fresh block of tens of MB is mapped and page-faulted in on every product.
CPU_SCORE_ELEMENTS = 1 << 21
CPU_BLOCK_ROWS = 64
# Whole-catalogue rows are scored on the CPU in blocks of about this many scores (but at least
# CPU_BLOCK_ROWS rows): a block that stays in a core's cache is counted from there.
CPU_CACHED_SCORES = 1 << 20
# Positions the encoder reads per call on the CPU: its activations (positions x inner_dim)
# then stay in the caches (the chunks are cut into pieces at their own width, same states).
CPU_ENCODER_POSITIONS = 4096


def rank_targets(states: torch.Tensor, table: torch.Tensor, history: torch.Tensor,
                 targets: torch.Tensor, exclude_history: bool = True,
                 item_block: int | None = None, scratch: torch.Tensor | None = None,
                 columns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`target_ranks` of the scores ``states @ table.T``, in blocks of items.

    Args:
        states: (B, D) sequence representations.
        table: (num_items + 1, D) item table; row 0 is padding.
        history, targets, exclude_history: as in :func:`target_ranks`.
        item_block: items scored per product [the whole table if B x (num_items + 1) fits in
            ``SCORE_ELEMENTS``, else as many items as fit beside the target columns, the users
            taken ``BLOCK_ROWS`` at a time].
        scratch: a flat buffer of the table's dtype and device, of at least
            :func:`score_limits`' scores, that the whole-row products are written into [one is
            allocated per call on the CPU]. A fresh block per product costs its page faults.
        columns: ``item_columns(table)``, to reuse call after call [made per call on the
            CPU]: the whole-row products read it.

    Returns:
        higher, tied as :func:`target_ranks` gives them for the whole score matrix.
    """
    b, n = states.shape[0], table.shape[0]
    limit = score_limits(states.device)[0]
    if item_block is None:
        rows = rows_per_block(n, states.device)
        if b <= rows and b * n <= limit:
            return target_ranks(_scores(states, table, scratch, columns), history, targets,
                                exclude_history)
        if b > rows:
            if scratch is None and states.device.type == "cpu":
                scratch, columns = score_scratch(table), item_columns(table)
            # Near-equal chunks: no remainder of one or two rows, which a BLAS may round
            # differently from a larger product (a near-tie could then flip).
            chunks = -(-b // rows)
            parts = [rank_targets(s, table, h, y, exclude_history, scratch=scratch,
                                  columns=columns)
                     for s, h, y in zip(states.tensor_split(chunks), history.tensor_split(chunks),
                                        targets.tensor_split(chunks), strict=True)]
            return tuple(torch.cat(p) for p in zip(*parts, strict=True))
        item_block = max(1, limit // b - b)
    # Each block's product scores the targets too: every comparison of a target with an item
    # is between two values of one matrix product, so equal vectors stay exact ties.
    with_targets = table[targets]
    own = torch.arange(b, device=states.device)
    higher = torch.zeros(b, dtype=torch.long, device=states.device)
    alike = torch.zeros_like(higher)
    for start in range(0, n, item_block):
        stop = min(start + item_block, n)
        scores = states @ torch.cat([table[start:stop], with_targets]).T  # (B, W + B)
        target_scores = scores[own, stop - start + own][:, None]
        # The target's own column gets the very value it is compared with (two products of
        # different shapes may round it differently), so ``alike - 1`` below is exact.
        inside = (targets >= start) & (targets < stop)
        scores[own[inside], targets[inside] - start] = target_scores[inside, 0]
        h, a = block_counts(scores[:, :stop - start], start, target_scores,
                            history if exclude_history else None, targets)
        higher += h
        alike += a
    return higher, alike - 1  # minus the target itself


def rows_per_block(n: int, device: torch.device) -> int:
    """Users per product on ``device`` with ``n`` items: whole-catalogue rows while a block of
    them fits, else ``score_limits``' users per item-blocked product."""
    limit, block_rows = score_limits(device)
    if limit // n < block_rows:
        return block_rows
    if device.type == "cpu":
        return max(block_rows, min(limit, CPU_CACHED_SCORES) // n)
    return limit // n


def score_scratch(table: torch.Tensor) -> torch.Tensor:
    """A buffer for :func:`rank_targets`' products with ``table``, to reuse call after call."""
    return table.new_empty(score_limits(table.device)[0], requires_grad=False)


def item_columns(table: torch.Tensor) -> torch.Tensor:
    """(D, num_items + 1) the table transposed into its own memory, for :func:`rank_targets`'
    products to read: on the CPU a product reads it faster than the transposed view (the same
    scores bit for bit, tested)."""
    return table.detach().T.contiguous()


def _scores(states: torch.Tensor, table: torch.Tensor, scratch: torch.Tensor | None,
            columns: torch.Tensor | None = None) -> torch.Tensor:
    """``states @ table.T``, written into ``scratch`` where it may be (no autograd needed),
    read from ``columns`` (``item_columns(table)``) where given."""
    b, n = states.shape[0], table.shape[0]
    if (scratch is None or b * n > scratch.numel()
            or (torch.is_grad_enabled() and (states.requires_grad or table.requires_grad))):
        return states @ table.T
    return torch.matmul(states, table.T if columns is None else columns,
                        out=scratch[:b * n].view(b, n))


def score_limits(device: torch.device) -> tuple[int, int]:
    """(scores per product, users per item-blocked product) on ``device``."""
    if device.type == "cpu":
        return CPU_SCORE_ELEMENTS, CPU_BLOCK_ROWS
    return SCORE_ELEMENTS, BLOCK_ROWS


def block_counts(block: torch.Tensor, start: int, target_scores: torch.Tensor,
                 history: torch.Tensor | None = None, targets: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """How many rankable items of one block of the catalogue score above, and exactly as high
    as, each target.

    Args:
        block: (B, W) scores of the items ``start .. start + W - 1``; item 0 (padding) is
            never counted.
        start: the item id of the block's first column.
        target_scores: (B, 1) each target's score, from the same product as ``block``.
        history: (B, H) items left out of the ranking, or None to rank every item; the
            padding id, repeats and the row's own target are ignored.
        targets: (B,) target item ids (needed with ``history``).

    Returns:
        higher, alike: (B,) long; ``alike`` counts the target itself when it is in the block.

    Raises:
        NonFiniteScores: some score of a real item is NaN or infinite.
    """
    if block.device.type == "cpu" and block.dtype == torch.float32:
        return _cpu_block_counts(block, start, target_scores, history, targets)
    return _torch_block_counts(block, start, target_scores, history, targets)


def _torch_block_counts(block: torch.Tensor, start: int, target_scores: torch.Tensor,
                        history: torch.Tensor | None, targets: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`block_counts` in tensor operations, for any device and dtype."""
    columns = None if history is None else history_columns(history, targets)
    real = block[:, PAD + 1 - start:] if start <= PAD else block
    if real.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(real))).all()):
        # (min and max are NaN if any score is, and infinite if any score is: one pass.)
        raise NonFiniteScores("the model's scores contain NaN or infinite values")
    if real.shape[1] < EXACT_FLOAT_COUNT:
        # sign(s - t) is +1 above, 0 tied, -1 below: two float sums give both counts, faster
        # than summing two boolean masks (exact: integers below 2^24 in float32).
        sign = torch.sub(real, target_scores).sign_()
        above_minus_below = sign.sum(dim=1)
        differing = sign.abs_().sum(dim=1)
        higher = ((above_minus_below + differing) / 2).long()
        alike = real.shape[1] - differing.long()
    else:
        higher = (real > target_scores).sum(dim=1)
        alike = (real == target_scores).sum(dim=1)
    if columns is not None:
        # Take back the history items (but the target): a few gathered columns per row
        # instead of a masked copy of all the scores.
        inside = (columns > PAD) & (columns >= start) & (columns < start + block.shape[1])
        masked = block.gather(1, (columns - start).clamp(0, block.shape[1] - 1))
        higher -= ((masked > target_scores) & inside).sum(dim=1)
        alike -= ((masked == target_scores) & inside).sum(dim=1)
    return higher, alike


EXACT_FLOAT_COUNT = 1 << 24


def _cpu_block_counts(block: torch.Tensor, start: int, target_scores: torch.Tensor,
                      history: torch.Tensor | None, targets: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`block_counts` in one pass of a numba kernel (same counts, same error). The kernel
    skips the padding, the repeats and the target of each history itself: no sorted copy of
    the histories."""
    b = block.shape[0]
    higher = np.zeros(b, dtype=np.int64)
    alike = np.zeros(b, dtype=np.int64)
    if history is None:
        history, targets = torch.zeros(b, 0, dtype=torch.long), torch.zeros(b, dtype=torch.long)
    # One thread: sharing the rows among threads was measured and did not pay
    # (docs/RESULTS.md, "Validation pass on the CPU").
    if count_above_and_alike(block.detach().numpy(), max(PAD + 1 - start, 0),
                             target_scores.detach().reshape(b).contiguous().numpy(),
                             history.to(torch.int64).contiguous().numpy(),
                             targets.to(torch.int64).contiguous().numpy(), start, higher, alike):
        raise NonFiniteScores("the model's scores contain NaN or infinite values")
    return torch.from_numpy(higher), torch.from_numpy(alike)


def history_columns(history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, H) each row's distinct history items other than its target; PAD (0) fills the rest
    (padding, repeats, the target)."""
    columns = history.sort(dim=1).values
    repeat = torch.zeros_like(columns, dtype=torch.bool)
    repeat[:, 1:] = columns[:, 1:] == columns[:, :-1]
    return columns.masked_fill(repeat | (columns == targets[:, None]), PAD)


def equal_width_chunks(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    """``length_sorted_chunks(lengths, size)`` (``iter_last_states``' chunks of ``size``) with
    consecutive chunks of one width (their longest row, at least 1) joined, while a joined
    chunk holds at most ``size`` x the longest width positions (no more memory than one chunk
    of the longest rows).

    Every row is encoded at the width chunks of ``size`` give it, so its state is the same
    (the padding width may change SASRec's last float bits; the rows per call do not), in
    fewer, larger encoder calls: on short-sequence data most chunks share a width of a few
    items, and each call's fixed cost and thread hand-offs are paid once for all of them.
    """
    chunks = length_sorted_chunks(lengths, size)
    widths = [max(int(lengths[rows].max()), 1) for rows in chunks]
    limit = size * max(widths, default=1)
    joined: list[list[np.ndarray]] = []
    for i, rows in enumerate(chunks):
        if (i and widths[i] == widths[i - 1]
                and (sum(map(len, joined[-1])) + len(rows)) * widths[i] <= limit):
            joined[-1].append(rows)
        else:
            joined.append([rows])
    return [np.concatenate(parts) for parts in joined]


@torch.no_grad()
def evaluate_ranking(encoder: torch.nn.Module, inputs: list[np.ndarray], targets: np.ndarray,
                     max_len: int, *, batch_size: int = 1024, device: torch.device | str = "cpu",
                     exclude_history: bool = True, ks: tuple[int, ...] = (5, 10, 20),
                     return_ranks: bool = False):
    """Full-ranking HR / NDCG / MRR of an encoder on (input sequence, target) cases.

    The representation of a sequence is the encoder state at its last position; the scores are
    its dot products with every item embedding. Ties with the target count as a random draw
    (metrics_from_ranks); ``return_ranks`` adds each case's expected 0-based rank.

    Raises:
        NonFiniteScores: the encoder scored some item NaN or infinite.
    """
    was_training = encoder.training
    encoder.eval()
    histories = FlatHistories(inputs)
    table = encoder.item_table  # (num_items + 1, D)
    ranks = np.empty(len(histories), dtype=np.int64)
    ties = np.empty(len(histories), dtype=np.int64)
    on_cpu = table.device.type == "cpu"
    columns = item_columns(table) if on_cpu else None
    buffers = threading.local()  # a score buffer for each thread that ranks

    @torch.no_grad()  # (grad mode is per thread: the ranking may run on another one)
    def rank(rows: np.ndarray, h: torch.Tensor) -> None:
        if on_cpu and not hasattr(buffers, "scratch"):
            buffers.scratch = score_scratch(table)
        y = torch.from_numpy(targets[rows]).to(device)
        history = torch.from_numpy(histories.left_pad(rows))
        higher, tied = rank_targets(h, table, history.to(device), y, exclude_history,
                                    scratch=getattr(buffers, "scratch", None), columns=columns)
        ranks[rows], ties[rows] = higher.cpu(), tied.cpu()

    chunks = partial(equal_width_chunks, size=batch_size)
    padded = histories.left_pad(width=max_len)
    positions = CPU_ENCODER_POSITIONS if on_cpu else None
    if on_cpu and torch.get_num_threads() > 1 and THREADED_CPU_PASS:
        @torch.no_grad()
        def encode_and_rank(rows: np.ndarray, piece: torch.Tensor) -> None:
            rank(rows, encoder.last_state(piece))

        on_threads(iter_pieces(padded, chunks, device, positions), encode_and_rank,
                   torch.get_num_threads())
    else:
        for rows, h in iter_last_states(encoder, padded, chunks, device, positions):
            rank(rows, h)
    encoder.train(was_training)
    metrics = metrics_from_ranks(ranks, ks, ties)
    return (metrics, ranks + ties / 2.0) if return_ranks else metrics


# Encode and rank pieces on every thread at once on a CPU of two threads or more (on_threads).
THREADED_CPU_PASS = True


def on_threads(pieces: Iterator[tuple[np.ndarray, torch.Tensor]],
               work: Callable[[np.ndarray, torch.Tensor], None], threads: int) -> None:
    """``work`` on every piece, on ``threads`` worker threads of one torch thread each
    (``rclrec.cpu_workers``) that each take the next piece when done with one.

    The encoder's many small operations scale poorly over threads (each waits for the
    slowest at every operation) and the counting kernel runs on one; whole pieces per thread
    meet only to take the next one. Every state and product is the one a single thread
    computes (tested), so the ranks are those of the one-thread loop. The first error stops
    the other threads at their next piece and reaches the caller.
    """
    lock, failed = threading.Lock(), threading.Event()

    def take_pieces() -> None:
        try:
            while not failed.is_set():
                with lock:
                    piece = next(pieces, None)
                if piece is None:
                    return
                work(*piece)
        except BaseException:
            failed.set()
            raise

    run_one_thread_each([take_pieces] * threads)
