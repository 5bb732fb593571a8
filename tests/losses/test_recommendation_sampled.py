"""Sampled softmax with log-Q correction and gBCE: hand-computed values on tiny tensors."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rclrec.config import ConfigError, TrainConfig, load_config
from rclrec.losses import recommendation
from rclrec.losses.recommendation import (
    RecommendationLoss,
    bce_one_negative_loss,
    cross_entropy_loss,
    gbce_beta,
    gbce_loss,
    recommendation_loss,
    sampled_softmax_loss,
)

# Item i's embedding is the number i (D = 1): every score is state * item id.
TABLE = torch.arange(5, dtype=torch.float64)[:, None]  # items 1..4, row 0 padding


def test_sampled_softmax_by_hand_corrects_each_negative_by_its_expected_count():
    states = torch.tensor([[1.0], [0.5]], dtype=torch.float64)
    targets = torch.tensor([1, 2])
    sampled = torch.tensor([3])
    frequency = torch.tensor([0.0, 0.5, 0.25, 0.25, 0.0])
    # Expected count of j among the negatives: K / N + (P - 1) p(j) = 1/4 + p(j):
    # item 1 -> 0.75, item 2 -> 0.5, item 3 -> 0.5. The positive keeps its raw score.
    row0 = math.log(math.exp(1) + math.exp(2) / 0.5 + math.exp(3) / 0.5) - 1  # item 1 masked
    row1 = math.log(math.exp(1) + math.exp(0.5) / 0.75 + math.exp(1.5) / 0.5) - 1  # item 2 masked
    loss = sampled_softmax_loss(states, targets, TABLE, sampled, frequency)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


def test_accidental_hits_of_the_target_are_masked_wherever_they_come_from():
    states = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    targets = torch.tensor([1, 1])  # the same target twice: each other's accidental hit
    sampled = torch.tensor([1, 2])  # a uniform draw of the target, and one real negative
    frequency = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])
    # Only item 2 (uniform, expected count K / N = 2/4) is a negative of either row.
    rows = [math.log(math.exp(s) + math.exp(2 * s) / 0.5) - s for s in (1.0, 2.0)]
    loss = sampled_softmax_loss(states, targets, TABLE, sampled, frequency)
    assert loss.item() == pytest.approx(sum(rows) / 2, rel=1e-12)


def test_with_many_uniform_negatives_the_corrected_loss_approaches_the_full_softmax():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(21, 4, generator=gen, dtype=torch.float64)
    states = torch.randn(1, 4, generator=gen, dtype=torch.float64)  # one row: no in-batch
    targets = torch.tensor([7])
    sampled = torch.randint(1, 21, (400_000,), generator=gen)
    corrected = sampled_softmax_loss(states, targets, table, sampled, torch.zeros(21))
    full = F.cross_entropy(states @ table[1:].T, targets - 1)
    assert corrected.item() == pytest.approx(full.item(), abs=5e-3)
    # Without the correction the 400,000 draws would swamp the positive.
    uncorrected = torch.logsumexp(torch.cat([states @ table[7:8].T,
                                             (states @ table[sampled].T)[:, sampled != 7]], 1), 1)
    assert (uncorrected - states @ table[7]).item() > full.item() + 5


def test_gbce_beta_follows_gsasrec():
    # alpha = K / (N - 1) = 2 / 4; beta = alpha (t (1 - 1/alpha) + 1/alpha)
    assert gbce_beta(2, 5, 0.5) == pytest.approx(0.5 * (0.5 * (1 - 2) + 2))  # 0.75
    assert gbce_beta(2, 5, 0.0) == pytest.approx(1.0)  # plain BCE
    assert gbce_beta(2, 5, 1.0) == pytest.approx(0.5)  # alpha


def test_gbce_by_hand_with_an_accidental_hit_left_out():
    states = torch.tensor([[1.0]], dtype=torch.float64)
    targets = torch.tensor([1])
    sampled = torch.tensor([[2, 1]])  # the second draw is the target itself
    beta = 0.75
    shift = math.log(beta / 2)  # log(beta / K): every score is shifted by it
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731 -- softplus
    expected = (beta * sp(-(1.0 + shift)) + sp(2.0 + shift)) / 3  # mean of K + 1, hit = 0
    assert gbce_loss(states, targets, TABLE, sampled, beta).item() == pytest.approx(
        expected, rel=1e-12)


def test_gbce_at_t0_with_one_negative_is_half_of_sasrec_bce():
    gen = torch.Generator().manual_seed(5)
    table, states = torch.randn(31, 4, generator=gen), torch.randn(6, 4, generator=gen)
    targets = torch.randint(1, 31, (6,), generator=gen)
    torch.manual_seed(0)  # a seed whose draws hit no target (BCE keeps hits, gBCE drops them)
    bce = bce_one_negative_loss(states, targets, table)
    torch.manual_seed(0)
    negatives = torch.randint(1, 31, targets.shape)  # the draws BCE made, one per row
    assert bool((negatives != targets).all())
    torch.testing.assert_close(gbce_loss(states, targets, table, negatives[:, None], 1.0),
                               bce / 2)


def reference_sampled_softmax(states, targets, table, sampled, frequency):
    """The formula with plain autograd ops and the whole (P, P + K) matrix."""
    candidates = torch.cat([targets, sampled])
    scores = states @ table[candidates].T
    expected = len(sampled) / (len(table) - 1) + (len(targets) - 1) * frequency[candidates]
    negatives = (scores - expected.log()).masked_fill(candidates[None] == targets[:, None],
                                                      float("-inf"))
    logits = torch.cat([scores.diagonal()[:, None], negatives], 1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long))


def reference_gbce(states, targets, table, negatives, beta):
    shift = math.log(beta / negatives.shape[1])
    positive = (states * table[targets]).sum(-1) + shift
    scores = torch.einsum("pd,pkd->pk", states, table[negatives]) + shift
    terms = F.softplus(scores) * (negatives != targets[:, None])
    return ((beta * F.softplus(-positive) + terms.sum(1)) / (negatives.shape[1] + 1)).mean()


def gsasrec_transcription(states, targets, table, negatives, num_items, t, shift=0.0):
    """The loss of gSASRec's training loop (asash/gSASRec-pytorch, train_gsasrec.py) written
    out as there: beta from the sampling rate, the positive's logit replaced by
    log(1 / (sigma(s+)^-beta - 1)), BCE with logits over the K + 1 scores, mean per position;
    ``shift`` is added to every score first (theirs: 0)."""
    alpha = negatives.shape[1] / (num_items - 1)
    beta = alpha * ((1 - 1 / alpha) * t + 1 / alpha)
    logits = torch.einsum("pd,pnd->pn", states,
                          table[torch.cat([targets[:, None], negatives], 1)]) + shift
    eps, biggest = 1e-10, torch.finfo(torch.float64).max
    positive_probs = torch.clamp(torch.sigmoid(logits[:, :1]), eps, 1 - eps)
    adjusted = torch.clamp(positive_probs.pow(-beta), 1 + eps, biggest)
    transformed = torch.clamp(1.0 / (adjusted - 1), eps, biggest).log()
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    return F.binary_cross_entropy_with_logits(torch.cat([transformed, logits[:, 1:]], 1),
                                              labels, reduction="none").mean(-1).mean()


@pytest.mark.parametrize("t", [0.0, 0.75, 1.0])
def test_gbce_equals_the_authors_transformed_logit_in_value_and_gradients(t):
    gen = torch.Generator().manual_seed(11)
    num_items, k = 60, 8
    table = torch.randn(num_items + 1, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    states = torch.randn(9, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, num_items + 1, (9,), generator=gen)
    negatives = torch.randint(1, num_items + 1, (9, k), generator=gen)
    assert bool((negatives != targets[:, None]).all())  # theirs keeps accidental hits
    beta = gbce_beta(k, num_items, t)
    ours = gbce_loss(states, targets, table, negatives, beta)
    theirs = gsasrec_transcription(states, targets, table, negatives, num_items, t,
                                   shift=math.log(beta / k))
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(torch.autograd.grad(ours, (states, table)),
                    torch.autograd.grad(theirs, (states, table)), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("t", [0.0, 0.75, 1.0])
def test_gbce_of_uninformative_scores_is_at_its_minimum_along_a_common_offset(t):
    # Every item vector is the number 1 (D = 1) and every state c: all scores equal c. At c = 0
    # the pull on the positive and the push on the K negatives must cancel, so the loss asks
    # no shared offset of the weights (unshifted, the push of 256 negatives wins by far).
    num_items, k = 1000, 256
    beta = gbce_beta(k, num_items, t)
    table = torch.ones(num_items + 1, 1, dtype=torch.float64)
    states = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 2, 3, 4])
    negatives = torch.arange(5, 5 + k).repeat(4, 1)  # no accidental hit
    (grad,) = torch.autograd.grad(gbce_loss(states, targets, table, negatives, beta), states)
    assert grad.abs().max().item() < 1e-12
    nudged = states.detach() + torch.tensor([[-0.01], [0.01], [0.0], [0.0]], dtype=torch.float64)
    at_zero = gbce_loss(states.detach(), targets, table, negatives, beta)
    for rows in (nudged[:1].repeat(4, 1), nudged[1:2].repeat(4, 1)):
        assert gbce_loss(rows, targets, table, negatives, beta) > at_zero


@pytest.mark.parametrize("block_elements", [1, 300, 1 << 20])  # one row, a few rows, all rows
def test_row_blocks_match_the_plain_formulas_in_value_and_gradients(monkeypatch, block_elements):
    gen = torch.Generator().manual_seed(7)
    table = torch.randn(41, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    states = torch.randn(30, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 40, 7, 7, 7] + list(range(1, 26)))  # repeats: in-batch hits
    sampled = torch.tensor([7, 3, 3, 40, 12])  # hits and a repeat
    frequency = torch.rand(41, generator=gen, dtype=torch.float64)
    negatives = torch.randint(1, 41, (30, 6), generator=gen)
    negatives[2, 0] = 7  # an accidental hit
    monkeypatch.setattr(recommendation, "CHUNK_ELEMENTS", block_elements)
    for ours, ref in [
        (sampled_softmax_loss(states, targets, table, sampled, frequency / frequency.sum()),
         reference_sampled_softmax(states, targets, table, sampled, frequency / frequency.sum())),
        (gbce_loss(states, targets, table, negatives, 0.3),
         reference_gbce(states, targets, table, negatives, 0.3)),
    ]:
        torch.testing.assert_close(ours, ref)
        for a, b in zip(torch.autograd.grad(2.0 * ours, (states, table)),
                        torch.autograd.grad(2.0 * ref, (states, table)), strict=True):
            torch.testing.assert_close(a, b)


def test_build_counts_the_training_targets_for_the_sampled_loss():
    targets = np.array([[0, 1, 2], [0, 0, 2], [3, 2, 1]])  # 0 = no target
    cfg = TrainConfig(loss="sampled", negatives=7)
    loss = RecommendationLoss.build(cfg, targets, num_items=4)
    assert loss.negatives == 7
    torch.testing.assert_close(loss.target_frequency,
                               torch.tensor([0, 2 / 6, 3 / 6, 1 / 6, 0], dtype=torch.float32))
    assert RecommendationLoss.build(TrainConfig(), targets, 4).target_frequency is None


@pytest.mark.parametrize("kind", ["sampled", "gbce"])
def test_same_seed_same_negatives_and_gradients_reach_states_and_items(kind):
    gen = torch.Generator().manual_seed(2)
    table = torch.randn(51, 8, generator=gen, requires_grad=True)
    states = torch.randn(12, 8, generator=gen, requires_grad=True)
    targets = torch.randint(1, 51, (12,), generator=gen)
    loss_fn = RecommendationLoss.build(TrainConfig(loss=kind, negatives=5),
                                       targets.numpy()[None], 50)
    values = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        values.append(recommendation_loss(loss_fn, states, targets, table))
    assert values[0].item() == values[1].item() != values[2].item()
    grads = torch.autograd.grad(values[0], (states, table))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_sampled_losses_keep_float32_under_bf16_autocast():
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(41, 8, generator=gen)
    states = torch.randn(30, 8, generator=gen).bfloat16()
    targets = torch.randint(1, 41, (30,), generator=gen)
    for kind in ("sampled", "gbce"):
        loss_fn = RecommendationLoss.build(TrainConfig(loss=kind, negatives=9),
                                           targets.numpy()[None], 40)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert loss_fn(states, targets, table).dtype == torch.float32


def test_the_sampled_kinds_need_the_built_loss_object():
    table, states, targets = torch.randn(11, 4), torch.randn(3, 4), torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="needs the RecommendationLoss"):
        recommendation_loss("sampled", states, targets, table)
    torch.testing.assert_close(recommendation_loss(RecommendationLoss("ce"), states, targets,
                                                   table),
                               cross_entropy_loss(states, targets, table))


def test_loss_settings_are_checked():
    cfg = load_config(overrides={"train.loss": "gbce", "train.negatives": "3"})
    assert cfg.train.negatives == 3
    with pytest.raises(ConfigError, match="train.negatives"):
        load_config(overrides={"train.loss": "gbce", "train.negatives": "0"})
    with pytest.raises(ConfigError, match="train.negatives"):
        load_config(overrides={"train.loss": "sampled", "train.negatives": "-1"})
    with pytest.raises(ConfigError, match="train.gbce_t"):
        load_config(overrides={"train.gbce_t": "1.5"})


def test_a_row_left_without_negatives_has_loss_zero_and_finite_gradients():
    states = torch.tensor([[1.0]], requires_grad=True)
    table = TABLE.float().requires_grad_()
    loss = sampled_softmax_loss(states, torch.tensor([2]), table, torch.tensor([2]),
                                torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
    assert loss.item() == 0.0
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(loss, (states, table)))
