"""Next-item losses: full-softmax cross-entropy (Eq. 3-4), SASRec's BCE with one negative, and
for large catalogs sampled softmax with log-Q correction and gBCE (docs/LOSSES.md)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rclrec.cpu_workers import run_one_thread_each
from rclrec.data.dataset import PAD
from rclrec.devices import to_device


def cross_entropy_loss(states: torch.Tensor, targets: torch.Tensor,
                       item_table: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the whole item set, averaged over positions with a target.

    Args:
        states: (P, D) encoder states of the positions that have a target.
        targets: (P,) target item ids in 1..num_items.
        item_table: (num_items + 1, D) item embeddings; row 0 (padding) is never a class.

    Computed in float32 (under bf16 autocast too: the softmax over thousands of items and the
    loss keep full precision) unless the inputs are float64.
    """
    dtype = torch.promote_types(torch.promote_types(states.dtype, item_table.dtype),
                                torch.float32)
    with torch.autocast(states.device.type, enabled=False):
        return _FullSoftmaxCrossEntropy.apply(states.to(dtype), item_table[1:].to(dtype),
                                              targets - 1)


# Rows of scores worked on at a time: a (rows, num_items) block of a few MB stays in the CPU's
# cache between the forward and the two backward products, where the whole (P, num_items)
# matrix would go to memory and back several times.
CHUNK_ELEMENTS = 1 << 20


def chunk_rows(num_items: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(num_items, 1))


class _GradientsFromForward(torch.autograd.Function):
    """A loss whose forward pass saved its gradients (``ctx.save_for_backward``, one per
    differentiable input, in order) and set ``ctx.other_inputs``, the count of the inputs after
    them: the gradients of a sum or mean are linear in the incoming gradient, so the backward
    pass only scales them."""

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        return (*(grad_loss * g for g in ctx.saved_tensors), *[None] * ctx.other_inputs)


class _FullSoftmaxCrossEntropy(_GradientsFromForward):
    """mean(logsumexp(s E^T) - s e_target), its gradients computed in the forward pass.

    The same value and gradients as ``F.cross_entropy(states @ table.T, classes)``, but the
    scores over all items (most of a training step's time and memory) are never held whole:
    rows are taken a block at a time, each block's scores become their softmax in place (one
    fused kernel, each row in cache), and the softmax goes straight into both gradients
    (d states = (softmax - onehot) E, d E = (softmax - onehot)^T s) while it is still in cache.
    The gradients of a mean are linear in the incoming gradient, so the backward pass only
    scales them. Without gradients (evaluation) only the loss is computed.

    The loss comes from probabilities the softmax already holds (``_row_losses``), so no pass
    over the scores is spent on their maximum and sum. On the CPU with several threads, each
    thread works through its own share of the rows (``BLOCKS_PER_THREAD``), with its own d E
    sum: the float sums differ from one thread's at rounding, as with any thread count.
    """

    @staticmethod
    def forward(ctx, states: torch.Tensor, table: torch.Tensor,
                classes: torch.Tensor) -> torch.Tensor:
        ctx.other_inputs = 1
        want_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        count, num_items = len(classes), table.shape[0]
        rows = chunk_rows(num_items)
        track_best = not _branches_are_free(states.device)
        # Items along the contiguous dimension: the two products that stream the block (the
        # scores s E^T and d E^T += s^T G) run faster on a (D, N) operand than on a view of E.
        table_t = table.T.contiguous()
        target_probability = states.new_empty(count)
        best = (states.new_empty(count), classes.new_empty(count)) if track_best else None
        grad_states = torch.empty_like(states) if want_grads else None
        parts = _thread_parts(count, rows, table.numel(), states.device)
        grad_tables_t = [torch.zeros_like(table_t) if want_grads else None for _ in parts]
        tasks = [partial(_softmax_blocks, states, table, table_t, classes, part, rows,
                         target_probability, best, grad_states, grad_table_t)
                 for part, grad_table_t in zip(parts, grad_tables_t, strict=True)]
        if len(tasks) == 1:
            tasks[0]()
        else:
            run_one_thread_each(tasks)
        losses = _row_losses(target_probability, best, states, table, classes)
        if want_grads:
            grad_table_t = grad_tables_t[0]
            for other in grad_tables_t[1:]:
                grad_table_t += other
            ctx.save_for_backward(grad_states.div_(count), grad_table_t.T.div_(count))
        return losses.sum() / count


# On the CPU with several intra-op threads, each thread takes its own share of the rows, block
# after block, with one intra-op thread and its own d E sum (True); otherwise every op of a
# block is split between the threads, which wait for each other at the end of each op and
# share each block's data between their caches (False). Off: whole training epochs ran slower
# with it (docs/RESULTS.md, "The CE on two cores"), although a CE call alone ran faster.
BLOCKS_PER_THREAD = False
# Each thread past the first adds a d E sum as large as the item table: at most this many
# elements in all (a catalogue of millions of items gets fewer threads, not gigabytes).
EXTRA_SUM_ELEMENTS = 1 << 26


def _thread_parts(count: int, rows: int, table_elements: int,
                  device: torch.device) -> list[range]:
    """The positions each thread works through (one part: the calling thread, all ops split
    between its intra-op threads as usual)."""
    threads = torch.get_num_threads() if device.type == "cpu" and BLOCKS_PER_THREAD else 1
    threads = min(threads, 1 + EXTRA_SUM_ELEMENTS // max(table_elements, 1))
    parts = max(1, min(threads, -(-count // rows)))  # no thread with less than a block
    edges = [count * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in zip(edges, edges[1:], strict=False)]


def _softmax_blocks(states: torch.Tensor, table: torch.Tensor, table_t: torch.Tensor,
                    classes: torch.Tensor, part: range, rows: int,
                    target_probability: torch.Tensor,
                    best: tuple[torch.Tensor, torch.Tensor] | None,
                    grad_states: torch.Tensor | None,
                    grad_table_t: torch.Tensor | None) -> None:
    """The CE's work on the positions in ``part``, ``rows`` at a time: their target's
    probability (and ``best``) and gradient rows are written, d E^T is added to
    ``grad_table_t`` (None: no gradients)."""
    on_cpu = states.device.type == "cpu"
    block = states.new_empty((min(rows, len(part)), table.shape[0]))
    for start in range(part.start, part.stop, rows):
        done = slice(start, min(start + rows, part.stop))
        s, c = states[done], classes[done]
        softmax = block[:len(c)]
        # In place on the CPU (tested there); elsewhere the softmax reads a separate product.
        scores = torch.mm(s, table_t, out=softmax if on_cpu else None)
        torch.softmax(scores, dim=1, out=softmax)
        own = (torch.arange(len(c), device=c.device), c)
        target_probability[done] = softmax[own]
        if best is not None:
            torch.max(softmax, dim=1, out=(best[0][done], best[1][done]))
        if grad_table_t is not None:
            softmax[own] -= 1
            torch.mm(softmax, table, out=grad_states[done])
            grad_table_t.addmm_(s.T, softmax)


def _branches_are_free(device: torch.device) -> bool:
    """On the CPU, a branch on a tensor's values costs nothing; on an accelerator it waits for
    the device (a host synchronisation inside the step)."""
    return device.type == "cpu"


def _row_losses(target_probability: torch.Tensor,
                best: tuple[torch.Tensor, torch.Tensor] | None, states: torch.Tensor,
                table: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """-log p(target) per row, exact also where p(target) underflows (below the smallest
    normal float its log is inexact, at 0 infinite: a target scored far below the row's best).

    With ``best`` (each row's highest probability and its item, never below 1 / N) every row
    is taken as logsumexp - s e_target = s (e_best - e_target) - log p(best), with no branch.
    Without it (on the CPU) only the rare underflowed rows are recomputed from their scores.
    """
    if best is not None:
        probability, item = best
        return (states * (table[item] - table[classes])).sum(dim=1) - probability.log()
    losses = target_probability.log().neg_()
    tiny = torch.finfo(states.dtype).tiny
    rows = (target_probability < tiny).nonzero().squeeze(1)
    if len(rows):
        scores = states[rows] @ table.T
        losses[rows] = (torch.logsumexp(scores, dim=1)
                        - scores.gather(1, classes[rows, None]).squeeze(1))
    return losses


def bce_one_negative_loss(states: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Original SASRec loss: log sigmoid of the target and of one uniformly sampled negative.

    The negative is uniform over all items; the original rejects the user's own items, which
    on these datasets changes about 1 draw in 1,000, so it is not worth a per-user lookup.
    """
    num_items = item_table.shape[0] - 1
    negatives = torch.randint(1, num_items + 1, targets.shape, device=targets.device,
                              generator=generator)
    pos = (states * item_table[targets]).sum(-1)
    neg = (states * item_table[negatives]).sum(-1)
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()


def sampled_softmax_loss(states: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor,
                         sampled: torch.Tensor, target_frequency: torch.Tensor) -> torch.Tensor:
    """Softmax over the target, the other targets of the batch and shared uniform samples, each
    negative's logit corrected by the log of its expected count (docs/LOSSES.md).

    A negative j's logit is ``s_j - log(K / N + (P - 1) p(j))``: the expected number of times j
    is drawn by the mixture of K uniform draws and the P - 1 other in-batch targets (each drawn
    with the training-target frequency p). The target's own logit is not corrected (it is
    always present, never drawn). Negatives equal to the row's target (its own in-batch column,
    the same item as another position's target, a uniform draw of it) are masked.

    Args:
        states: (P, D) encoder states of the positions that have a target.
        targets: (P,) target item ids in 1..num_items.
        item_table: (num_items + 1, D) item embeddings.
        sampled: (K,) uniform item ids in 1..num_items, shared by every row.
        target_frequency: (num_items + 1,) share of each item among the training targets.
    """
    num_items = item_table.shape[0] - 1
    dtype = _loss_dtype(states, item_table)
    with torch.autocast(states.device.type, enabled=False):
        candidates = torch.cat([targets, sampled])  # (P + K,): in-batch, then uniform
        expected = (len(sampled) / num_items
                    + (len(targets) - 1) * target_frequency[candidates].to(dtype))
        log_expected = expected.clamp_min(torch.finfo(dtype).tiny).log()
        return _SampledSoftmax.apply(states.to(dtype), item_table[candidates].to(dtype),
                                     log_expected, candidates, targets)


def _loss_dtype(states: torch.Tensor, item_table: torch.Tensor) -> torch.dtype:
    """float32 under bf16 autocast too (as the CE); float64 stays float64."""
    return torch.promote_types(torch.promote_types(states.dtype, item_table.dtype),
                               torch.float32)


class _SampledSoftmax(_GradientsFromForward):
    """mean over rows of logsumexp([s_i, corrected negatives]) - s_i, in row blocks.

    As ``_FullSoftmaxCrossEntropy``: the (P, P + K) scores (P grows with the batch's positions,
    so the whole matrix can reach gigabytes) are never held whole; each block's softmax goes
    straight into both gradients. Row i's positive is column i (its own in-batch target).
    """

    @staticmethod
    def forward(ctx, states: torch.Tensor, candidates_emb: torch.Tensor,
                log_expected: torch.Tensor, candidates: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        ctx.other_inputs = 3
        want_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        count = len(targets)
        rows = chunk_rows(len(candidates))
        lowest = torch.finfo(states.dtype).min  # masked: exp() = 0, and no inf - inf = NaN
        total = states.new_zeros(())
        grad_states = torch.empty_like(states) if want_grads else None
        grad_candidates = torch.zeros_like(candidates_emb) if want_grads else None
        for start in range(0, count, rows):
            s, t = states[start:start + rows], targets[start:start + rows]
            own = (torch.arange(len(t), device=t.device), torch.arange(start, start + len(t),
                                                                        device=t.device))
            scores = s @ candidates_emb.T  # (rows, P + K)
            positive = scores[own].clone()
            scores.sub_(log_expected).masked_fill_(candidates[None, :] == t[:, None], lowest)
            row_max = torch.maximum(positive, scores.amax(dim=1))
            unnormalised = scores.sub_(row_max[:, None]).exp_()  # in place: no second buffer
            positive_exp = (positive - row_max).exp()
            sum_exp = unnormalised.sum(dim=1) + positive_exp
            total += (row_max + sum_exp.log() - positive).sum()
            if want_grads:
                grad = unnormalised.div_(sum_exp[:, None])  # softmax of the negatives
                # The own column is masked (0 so far): it carries the positive's gradient.
                grad[own] += positive_exp / sum_exp - 1
                torch.mm(grad, candidates_emb, out=grad_states[start:start + rows])
                grad_candidates.addmm_(grad.T, s)
        if want_grads:
            ctx.save_for_backward(grad_states.div_(count), grad_candidates.div_(count))
        return total / count


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's power of the positive's probability: beta = alpha (t (1 - 1/alpha) + 1/alpha),
    with alpha = K / (num_items - 1) the negative sampling rate (Petrov & Macdonald 2023)."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce_shift(num_negatives: int, beta: float) -> float:
    """log(beta / K): the common score at which gBCE's pull on the positive and push on the K
    negatives cancel when the scores say nothing about the items (docs/LOSSES.md).

    ``gbce_loss`` adds it to every score. A dot-product model starting near zero scores (the
    0.02 initialisation) must otherwise build this offset out of its weights first: a component
    shared by every item vector and a state that points against it for every user, which on
    Beauty left all users with nearly one state and one ranking, close to popularity."""
    return float(np.log(beta / num_negatives))


def gbce_loss(states: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor,
              negatives: torch.Tensor, beta: float) -> torch.Tensor:
    """Generalised BCE (gSASRec) of the shifted scores z = s + log(beta / K):
    -(beta log sigma(z+) + sum_neg log(1 - sigma(z-))) / (K + 1), averaged over positions; a
    negative equal to the row's target is left out. The shift (``gbce_shift``) is the same for
    every item, so rankings are those of s.

    Args:
        states: (P, D); targets: (P,); item_table: (num_items + 1, D).
        negatives: (P, K) uniform item ids, K per position (as gSASRec draws them).
        beta: ``gbce_beta`` (1 = plain BCE with K negatives).
    """
    dtype = _loss_dtype(states, item_table)
    shift = gbce_shift(negatives.shape[1], beta)
    with torch.autocast(states.device.type, enabled=False):
        states, item_table = states.to(dtype), item_table.to(dtype)
        positive = (states * item_table[targets]).sum(-1) + shift  # (P,)
        # -log sigma(z) = softplus(-z); the negatives' -log(1 - sigma(z)) = softplus(z)
        total = beta * F.softplus(-positive).sum() + _NegativeSoftplusSum.apply(
            states, item_table, negatives, targets, shift)
        return total / (len(targets) * (negatives.shape[1] + 1))


class _NegativeSoftplusSum(_GradientsFromForward):
    """sum over rows i and their negatives j != target_i of softplus(s_i . e_j + shift), in row
    blocks: the (P, K, D) negative embeddings are gathered a block at a time, never whole."""

    @staticmethod
    def forward(ctx, states: torch.Tensor, table: torch.Tensor, negatives: torch.Tensor,
                targets: torch.Tensor, shift: float) -> torch.Tensor:
        ctx.other_inputs = 3
        want_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        count, per_row = negatives.shape
        rows = max(1, CHUNK_ELEMENTS // max(per_row * states.shape[1], 1))
        total = states.new_zeros(())
        grad_states = torch.empty_like(states) if want_grads else None
        grad_table = torch.zeros_like(table) if want_grads else None
        for start in range(0, count, rows):
            s, t = states[start:start + rows], targets[start:start + rows]
            n = negatives[start:start + rows]
            embedded = table[n]  # (rows, K, D)
            scores = torch.bmm(embedded, s[:, :, None]).squeeze(2).add_(shift)  # (rows, K)
            kept = n != t[:, None]
            total += F.softplus(scores).mul_(kept).sum()
            if want_grads:
                grad = torch.sigmoid(scores).mul_(kept)  # d softplus(s) / ds
                grad_states[start:start + rows] = torch.bmm(grad[:, None, :], embedded).squeeze(1)
                grad_table.index_add_(0, n.reshape(-1),
                                      (grad[:, :, None] * s[:, None, :]).reshape(-1, s.shape[1]))
        if want_grads:
            ctx.save_for_backward(grad_states, grad_table)
        return total


LOSSES = ("ce", "bce", "sampled", "gbce")


@dataclass(frozen=True)
class RecommendationLoss:
    """``train.loss`` with what it needs beyond the tensors of a step, built once per run.

    The uniform negatives are drawn from torch's default generator on the states' device: the
    trainer checkpoints its state and, data-parallel, seeds it per rank and epoch, so a resumed
    run draws the same negatives.

    Attributes:
        kind: ce | bce | sampled | gbce.
        negatives: K, the uniform negatives: per step and shared by the rows (``sampled``), or
            per position (``gbce``, as gSASRec).
        gbce_t: gBCE's calibration t.
        target_frequency: (num_items + 1,) share of each item among the training targets
            (the in-batch negatives' sampling distribution); None for the other kinds.
    """

    kind: str
    negatives: int = 0
    gbce_t: float = 0.0
    target_frequency: torch.Tensor | None = None

    @classmethod
    def build(cls, train_cfg, targets: np.ndarray, num_items: int,
              device: torch.device | str = "cpu") -> RecommendationLoss:
        """From the train config and every training target (0 = none)."""
        frequency = None
        if train_cfg.loss == "sampled":
            counts = np.bincount(targets[targets > 0].ravel(), minlength=num_items + 1)
            frequency = torch.from_numpy(counts / max(counts.sum(), 1)).to(device, torch.float32)
        return cls(train_cfg.loss, train_cfg.negatives, train_cfg.gbce_t, frequency)

    def __call__(self, states: torch.Tensor, targets: torch.Tensor,
                 item_table: torch.Tensor) -> torch.Tensor:
        if self.kind == "ce":
            return cross_entropy_loss(states, targets, item_table)
        if self.kind == "bce":
            return bce_one_negative_loss(states, targets, item_table)
        num_items = item_table.shape[0] - 1
        if self.kind == "sampled":
            sampled = torch.randint(1, num_items + 1, (self.negatives,), device=targets.device)
            return sampled_softmax_loss(states, targets, item_table, sampled,
                                        self.target_frequency)
        if self.kind == "gbce":
            negatives = torch.randint(1, num_items + 1, (len(targets), self.negatives),
                                      device=targets.device)
            return gbce_loss(states, targets, item_table, negatives,
                             gbce_beta(self.negatives, num_items, self.gbce_t))
        raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}, got {self.kind!r}")


def recommendation_loss(kind: str | RecommendationLoss, states: torch.Tensor,
                        targets: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
    """The next-item loss that ``train.loss`` names.

    ``kind`` is a built ``RecommendationLoss`` (every kind), or the name ``ce`` or ``bce``
    (these two need nothing but the tensors).
    """
    if isinstance(kind, RecommendationLoss):
        return kind(states, targets, item_table)
    if kind in ("ce", "bce"):
        return RecommendationLoss(kind)(states, targets, item_table)
    if kind in LOSSES:
        raise ValueError(f"train.loss={kind!r} needs the RecommendationLoss built for the run "
                         f"(its settings, item frequencies); only ce and bce can be named")
    raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}, got {kind!r}")


def select_target_positions(hidden: torch.Tensor, targets: torch.Tensor | np.ndarray
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the states that have a target.

    Args:
        hidden: (B, L, D) encoder states.
        targets: (B, L) next item per position, 0 = none (windows), or (B, 1) (prefixes: the
            target of the last position). A numpy array (targets still on the host) finds the
            positions without a boolean mask on the device, which would make a GPU wait for
            its count.

    Returns:
        states (P, D) and their targets (P,), on ``hidden``'s device.
    """
    device = hidden.device
    if targets.shape[1] == 1:
        last = targets[:, 0]
        return hidden[:, -1], to_device(last, device) if isinstance(last, np.ndarray) else last
    if isinstance(targets, np.ndarray):
        where = np.flatnonzero(targets != PAD)
        rows = hidden.reshape(-1, hidden.shape[2])
        return rows[to_device(where, device)], to_device(targets.reshape(-1)[where], device)
    keep = targets != PAD
    return hidden[keep], targets[keep]
