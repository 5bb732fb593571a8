"""Next-item losses: full-softmax cross-entropy (Eq. 3-4) and SASRec's BCE with one negative."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rclrec.data.dataset import PAD


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


class _FullSoftmaxCrossEntropy(torch.autograd.Function):
    """mean(logsumexp(s E^T) - s e_target), its gradients computed in the forward pass.

    The same value and gradients as ``F.cross_entropy(states @ table.T, classes)``, but the
    scores over all items (most of a training step's time and memory) are never held whole:
    rows are taken a block at a time, and each block's softmax goes straight into both
    gradients (d states = (softmax - onehot) E, d E = (softmax - onehot)^T s) while it is still
    in cache. The gradients of a mean are linear in the incoming gradient, so the backward
    pass only scales them. Without gradients (evaluation) only the loss is computed.
    """

    @staticmethod
    def forward(ctx, states: torch.Tensor, table: torch.Tensor,
                classes: torch.Tensor) -> torch.Tensor:
        want_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        count = len(classes)
        rows = chunk_rows(table.shape[0])
        block = states.new_empty((min(rows, count), table.shape[0]))
        total = states.new_zeros(())
        grad_states = torch.empty_like(states) if want_grads else None
        grad_table = torch.zeros_like(table) if want_grads else None
        for start in range(0, count, rows):
            s, c = states[start:start + rows], classes[start:start + rows]
            scores = torch.mm(s, table.T, out=block[:len(c)])
            target = scores.gather(1, c[:, None]).squeeze(1)
            row_max = scores.amax(dim=1)
            unnormalised = scores.sub_(row_max[:, None]).exp_()  # in place: no second buffer
            sum_exp = unnormalised.sum(dim=1)
            total += (row_max + sum_exp.log() - target).sum()
            if want_grads:
                grad = unnormalised.mul_(sum_exp.reciprocal()[:, None])  # the softmax
                grad[torch.arange(len(c), device=grad.device), c] -= 1
                torch.mm(grad, table, out=grad_states[start:start + rows])
                grad_table.addmm_(grad.T, s)
        if want_grads:
            ctx.save_for_backward(grad_states.div_(count), grad_table.div_(count))
        return total / count

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        grad_states, grad_table = ctx.saved_tensors
        return grad_loss * grad_states, grad_loss * grad_table, None


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


def recommendation_loss(kind: str, states: torch.Tensor, targets: torch.Tensor,
                        item_table: torch.Tensor) -> torch.Tensor:
    """The next-item loss that ``train.loss`` names: ``ce`` (full softmax) or ``bce``."""
    if kind == "ce":
        return cross_entropy_loss(states, targets, item_table)
    if kind == "bce":
        return bce_one_negative_loss(states, targets, item_table)
    raise ValueError(f"train.loss must be ce or bce, got {kind!r}")


def select_target_positions(hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor,
                                                                                   torch.Tensor]:
    """Gather the states that have a target.

    Args:
        hidden: (B, L, D) encoder states.
        targets: (B, L) next item per position, 0 = none (windows), or (B, 1) (prefixes: the
            target of the last position).

    Returns:
        states (P, D) and their targets (P,).
    """
    if targets.shape[1] == 1:
        return hidden[:, -1], targets[:, 0]
    keep = targets != PAD
    return hidden[keep], targets[keep]
