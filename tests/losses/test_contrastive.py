"""Relative contrastive loss: hand-computed values, the boundary, missing positives, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from rclrec.losses.contrastive import (
    VARIANTS,
    ContrastBatch,
    RCLLossConfig,
    fill_missing_strong,
    member_columns,
    official_rcl_loss,
    pair_logits,
    pair_losses,
    relative_contrastive_loss,
    stack_members,
    weighted_pair_losses,
)

PAPER_VARIANTS = tuple(v for v in VARIANTS if v != "official")

# ---------------------------------------------------------------- a loop-based reference


def reference_loss(hc, hs, has_s, hw, has_w, sim, *, variant="rcl", tau=1.0, cosine=False,
                   mask=False, ct=None, mt=None, floor=0.0, skip_weak=()) -> float:
    """Eq. 12-17 and 19 written out with Python loops over plain lists.

    Rows in ``skip_weak`` keep their weak positive in A but get no weak term.
    """
    b = len(hc)
    members = list(hc) + [hs[i] for i in range(b) if has_s[i]] + [hw[i] for i in range(b)
                                                                  if has_w[i]]
    if cosine:
        members = [[v / math.sqrt(sum(x * x for x in m)) for v in m] for m in members]
    m_count = len(members)
    s_col, w_col, nxt = [-1] * b, [-1] * b, b
    for i in range(b):
        if has_s[i]:
            s_col[i], nxt = nxt, nxt + 1
    for i in range(b):
        if has_w[i]:
            w_col[i], nxt = nxt, nxt + 1

    def z(i, c):
        return sum(p * q for p, q in zip(members[i], members[c], strict=True)) / tau

    def loss(i, x, weighted):
        def w(c):
            return sim[i][c] + floor if weighted else 1.0
        denominator = 0.0
        for c in range(m_count):
            if c == i or (mask and c != x and mt[c] == ct[i]):
                continue
            denominator += w(c) * math.exp(z(i, c))
        return -math.log(w(x) * math.exp(z(i, x)) / denominator)

    total, count = 0.0, 0
    for i in range(b):
        a, bb = s_col[i], (-1 if i in skip_weak else w_col[i])
        weighted = variant in ("rcl", "weak")
        if variant in ("rcl", "unweight"):
            if a >= 0 and bb >= 0:
                la = loss(i, a, False)
                term = la + max(loss(i, bb, weighted), la)
            elif a >= 0:
                term = loss(i, a, False)
            elif bb >= 0:
                term = loss(i, bb, weighted)
            else:
                continue
        elif variant == "weak":
            if bb < 0:
                continue
            term = loss(i, bb, True)
        elif variant == "strong":
            if a < 0:
                continue
            term = loss(i, a, False)
        else:  # three_pairs
            if a < 0 and bb < 0:
                continue
            term = 0.0
            if a >= 0:
                term += loss(i, a, False)
            if bb >= 0:
                term += loss(i, bb, False)
            if a >= 0 and bb >= 0:
                term += -math.log(math.exp(z(i, a)) / (math.exp(z(i, a)) + math.exp(z(i, bb))))
        total += term
        count += 1
    return total / count if count else 0.0


def _batch(b=4, d=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    hc = torch.randn(b, d, generator=g, dtype=dtype)
    hs = torch.randn(b, d, generator=g, dtype=dtype)
    hw = torch.randn(b, d, generator=g, dtype=dtype)
    has_s = torch.tensor([True, False, True, False, True, True][:b])
    has_w = torch.tensor([True, True, False, False, True, False][:b])
    m = b + int(has_s.sum()) + int(has_w.sum())
    sim = torch.rand(b, m, generator=g, dtype=dtype)
    sim[sim < 0.3] = 0.0  # sparse, as from the index
    _, w_col = member_columns(has_s, has_w)
    rows = torch.arange(b)[has_w]
    sim[rows, w_col[has_w]] = 0.5 + sim[rows, w_col[has_w]]  # s_ub > 0 by construction
    return hc, hs, has_s, hw, has_w, sim


def _ref(batch, **kw):
    hc, hs, has_s, hw, has_w, sim = batch
    return reference_loss(hc.tolist(), hs.tolist(), has_s.tolist(), hw.tolist(), has_w.tolist(),
                          sim.tolist(), **kw)


# ---------------------------------------------------------------- values


def test_hand_computed_two_by_two():
    # Centre 0 has a strong positive only, centre 1 a weak positive only: A = [c0, c1, a0, b1].
    hc = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    hs = torch.tensor([[1.0, 1.0], [9.0, 9.0]])  # row 1 absent: its values must not matter
    hw = torch.tensor([[9.0, 9.0], [0.5, 0.5]])
    has_s, has_w = torch.tensor([True, False]), torch.tensor([False, True])
    sim = torch.tensor([[0.0, 0.2, 1.0, 0.0],
                        [0.4, 0.0, 0.0, 0.8]])
    tau = 0.5
    # l(0, a0): z = c0.(c1, a0, b1) / tau = (0, 2, 1)
    l_a = -math.log(math.exp(2) / (math.exp(0) + math.exp(2) + math.exp(1)))
    # l_w(1, b1): z = c1.(c0, a0, b1) / tau = (0, 2, 1), weights (0.4, 0, 0.8): a0 vanishes
    l_wb = -math.log(0.8 * math.exp(1) / (0.4 * math.exp(0) + 0.8 * math.exp(1)))
    l_b = -math.log(math.exp(1) / (math.exp(0) + math.exp(2) + math.exp(1)))

    members = stack_members(hc, hs, has_s, hw, has_w)
    assert members.shape == (4, 2)
    strong_col, weak_col = member_columns(has_s, has_w)
    assert strong_col.tolist() == [2, -1] and weak_col.tolist() == [-1, 3]
    logits = pair_logits(hc, members, tau)
    assert pair_losses(logits, strong_col).tolist() == pytest.approx([l_a, 0.0])
    assert weighted_pair_losses(logits, sim, weak_col).tolist() == pytest.approx([0.0, l_wb])

    cfg = RCLLossConfig(tau=tau)
    loss, stats = relative_contrastive_loss(ContrastBatch(hc, hs, has_s, hw, has_w, sim), cfg)
    assert loss.item() == pytest.approx((l_a + l_wb) / 2)
    assert stats["contributing"] == 1.0 and stats["both"] == 0.0 and stats["members"] == 4.0
    loss, _ = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, None), RCLLossConfig(variant="unweight", tau=tau))
    assert loss.item() == pytest.approx((l_a + l_b) / 2)


@pytest.mark.parametrize("variant", PAPER_VARIANTS)
@pytest.mark.parametrize("options", [
    {},
    {"tau": 0.3, "cosine": True},
    {"mask": True},
    {"floor": 0.1},
])
def test_matches_loop_reference(variant, options):
    batch = _batch()
    hc, hs, has_s, hw, has_w, sim = batch
    # targets: centre 2 shares centre 0's target; strong slots carry the centre's target
    ct = torch.tensor([5, 6, 5, 7])
    mt = stack_members(ct, ct, has_s, torch.tensor([6, 5, 9, 9]), has_w)
    cfg = RCLLossConfig(variant=variant, tau=options.get("tau", 1.0),
                        mask_same_target=options.get("mask", False),
                        similarity="cosine" if options.get("cosine") else "dot",
                        weight_floor=options.get("floor", 0.0))
    loss, _ = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, sim, centre_targets=ct, member_targets=mt), cfg)
    expected = _ref(batch, variant=variant, ct=ct.tolist(), mt=mt.tolist(), **options)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_unit_weights_give_unweighted_loss():
    hc, hs, has_s, hw, has_w, sim = _batch()
    ones = torch.ones_like(sim)
    rcl, _ = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, ones), RCLLossConfig())
    unweight, _ = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, None), RCLLossConfig(variant="unweight"))
    assert rcl.item() == pytest.approx(unweight.item(), rel=1e-12)
    logits = pair_logits(hc, stack_members(hc, hs, has_s, hw, has_w), 1.0)
    _, weak_col = member_columns(has_s, has_w)
    torch.testing.assert_close(weighted_pair_losses(logits, ones, weak_col),
                               pair_losses(logits, weak_col))


def test_three_pairs_differs_from_rcl():
    batch = _batch()
    rcl, _ = relative_contrastive_loss(ContrastBatch(*batch), RCLLossConfig())
    three, _ = relative_contrastive_loss(
        ContrastBatch(*batch), RCLLossConfig(variant="three_pairs"))
    assert torch.isfinite(three) and abs(three.item() - rcl.item()) > 1e-3


# ---------------------------------------------------------------- the boundary (Eq. 17)


def _boundary_case(weak_close: bool):
    """Centre 0 has a and b; centre 1 has nothing and is only a negative.

    b is given centre 0's target and same-target masking is on, so b is out of the denominator of
    l(0, a): then b receives gradient only through the max term.
    """
    hc = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    hs = torch.tensor([[0.8, 0.6], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    wb = [2.0, 0.0] if weak_close else [-1.0, 0.5]
    hw = torch.tensor([wb, [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    has_s, has_w = torch.tensor([True, False]), torch.tensor([True, False])
    sim = torch.tensor([[0.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    ct = torch.tensor([3, 4])
    mt = torch.tensor([3, 4, 3, 3])
    cfg = RCLLossConfig(mask_same_target=True)
    loss, stats = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, sim, centre_targets=ct, member_targets=mt), cfg)
    loss.backward()
    return loss, stats, hs.grad[0], hw.grad[0]


def test_boundary_active_sends_gradient_to_strong_pair():
    loss, stats, grad_a, grad_b = _boundary_case(weak_close=True)
    assert stats["boundary_active"] == 1.0
    assert stats["l_weak"] < stats["l_strong"]
    assert loss.item() == pytest.approx(2 * stats["l_strong"])
    assert torch.all(grad_b == 0)
    assert grad_a.abs().sum() > 0


def test_boundary_inactive_sends_gradient_to_weak_pair():
    loss, stats, grad_a, grad_b = _boundary_case(weak_close=False)
    assert stats["boundary_active"] == 0.0
    assert stats["l_weak"] > stats["l_strong"]
    assert loss.item() == pytest.approx(stats["l_strong"] + stats["l_weak"])
    assert grad_b.abs().sum() > 0
    assert grad_a.abs().sum() > 0


def test_boundary_without_masking_weak_gets_only_denominator_gradient():
    # Unmasked, b is a negative of l(u, a); with the boundary active, h_b's gradient is exactly
    # that of 2 * l(u, a).
    hc = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    hs = torch.tensor([[0.8, 0.6]], dtype=torch.float64, requires_grad=True)
    hw = torch.tensor([[2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    yes = torch.tensor([True])
    sim = torch.tensor([[0.0, 1.0, 1.0]], dtype=torch.float64)
    loss, stats = relative_contrastive_loss(
        ContrastBatch(hc, hs, yes, hw, yes, sim), RCLLossConfig())
    assert stats["boundary_active"] == 1.0
    (grad_b,) = torch.autograd.grad(loss, hw)
    members = stack_members(hc, hs, yes, hw, yes)
    strong_col, _ = member_columns(yes, yes)
    (expected,) = torch.autograd.grad(2 * pair_losses(pair_logits(hc, members, 1.0),
                                                      strong_col).sum(), hw)
    torch.testing.assert_close(grad_b, expected)


# ---------------------------------------------------------------- missing positives, gradients


@pytest.mark.parametrize("variant", PAPER_VARIANTS)
def test_missing_positives_stay_finite(variant):
    hc, hs, _, hw, _, _ = _batch()
    for has_s, has_w in [
        (torch.tensor([True, False, False, False]), torch.tensor([False, True, False, False])),
        (torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)),
    ]:
        hc_, hs_, hw_ = (t.clone().requires_grad_() for t in (hc, hs, hw))
        m = 4 + int(has_s.sum()) + int(has_w.sum())
        sim = torch.ones(4, m, dtype=hc.dtype)
        loss, stats = relative_contrastive_loss(
            ContrastBatch(hc_, hs_, has_s, hw_, has_w, sim),
            RCLLossConfig(variant=variant, tau=0.05))
        loss.backward()
        assert torch.isfinite(loss)
        for t in (hc_, hs_, hw_):
            assert t.grad is None or torch.isfinite(t.grad).all()
        assert all(math.isfinite(v) for v in stats.values())
        if not has_s.any():
            assert loss.item() == 0.0
            assert hc_.grad is not None and torch.all(hc_.grad == 0)


def test_none_positives_and_single_centre():
    h = torch.randn(1, 3, requires_grad=True)
    loss, stats = relative_contrastive_loss(
        ContrastBatch(h, None, None, None, None, torch.zeros(1, 1)))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(h.grad).all() and stats["members"] == 1.0


def test_zero_weight_on_weak_positive_is_dropped_not_nan():
    batch = _batch()
    hc, hs, has_s, hw, has_w, sim = batch
    _, weak_col = member_columns(has_s, has_w)
    sim[0, weak_col[0]] = 0.0  # s_ub = 0 for centre 0 (which also has a strong positive)
    hc.requires_grad_()
    loss, stats = relative_contrastive_loss(
        ContrastBatch(hc, hs, has_s, hw, has_w, sim), RCLLossConfig())
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(hc.grad).all()
    assert stats["weak_zero_weight"] == 1.0
    # centre 0 takes the strong-only path; its b stays in A as a member
    expected = _ref((hc.detach(), hs, has_s, hw, has_w, sim), skip_weak={0})
    assert loss.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("cfg", [
    RCLLossConfig(tau=0.7),
    RCLLossConfig(variant="three_pairs", similarity="cosine"),
    RCLLossConfig(mask_same_target=True, weight_floor=0.05),
])
def test_gradcheck(cfg):
    hc, hs, has_s, hw, has_w, sim = _batch(b=3, d=2, seed=1)
    ct = torch.tensor([1, 2, 1])
    mt = stack_members(ct, ct, has_s, torch.tensor([2, 1, 3]), has_w)
    hc, hs, hw = (t.requires_grad_() for t in (hc, hs, hw))

    def f(a, s, w):
        return relative_contrastive_loss(
            ContrastBatch(a, s, has_s, w, has_w, sim, centre_targets=ct, member_targets=mt), cfg)[0]

    assert torch.autograd.gradcheck(f, (hc, hs, hw))


# ---------------------------------------------------------------- the strong ablation, config


def test_strong_variant_with_dropout_views():
    hc, hs, has_s, hw, _, _ = _batch()
    h_view = hc + 0.1
    h_s, has_all, is_view = fill_missing_strong(hs, has_s, h_view)
    assert has_all.all() and is_view.tolist() == (~has_s).tolist()
    none = torch.zeros(4, dtype=torch.bool)
    loss, stats = relative_contrastive_loss(
        ContrastBatch(hc, h_s, has_all, None, None, None, strong_is_view=is_view),
        RCLLossConfig(variant="strong"))
    expected = reference_loss(hc.tolist(), h_s.tolist(), [True] * 4, hw.tolist(), none.tolist(),
                              None, variant="strong")
    assert loss.item() == pytest.approx(expected)
    assert stats["self_view"] == pytest.approx(0.5)  # rows 1 and 3


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="variant"):
        RCLLossConfig(variant="nope")
    with pytest.raises(ValueError, match="similarity"):
        RCLLossConfig(similarity="l2")
    with pytest.raises(ValueError, match="tau"):
        RCLLossConfig(tau=0.0)
    hc, hs, has_s, hw, has_w, sim = _batch()
    with pytest.raises(ValueError, match="similarity weights"):
        relative_contrastive_loss(ContrastBatch(hc, hs, has_s, hw, has_w, None), RCLLossConfig())
    with pytest.raises(ValueError, match="shape"):
        relative_contrastive_loss(
            ContrastBatch(hc, hs, has_s, hw, has_w, sim[:, :-1]), RCLLossConfig())
    with pytest.raises(ValueError, match="targets"):
        relative_contrastive_loss(
            ContrastBatch(hc, hs, has_s, hw, has_w, sim), RCLLossConfig(mask_same_target=True))
    with pytest.raises(ValueError, match=">= 0"):
        relative_contrastive_loss(ContrastBatch(hc, hs, has_s, hw, has_w, -sim), RCLLossConfig())


# ---------------------------------------------------------------- the official code's loss


def reference_official(q, a, bw, w, tau) -> float:
    """docs/BASELINES.md 10.5 with loops: row-normalised logits, batch-wide clamp, weighted CE."""
    n = len(q)

    def rows(keys):
        out = []
        for i in range(n):
            r = [sum(x * y for x, y in zip(q[i], keys[j], strict=True)) for j in range(n)]
            norm = math.sqrt(sum(v * v for v in r))
            out.append([v / norm for v in r])
        return out

    def ce(r, i):
        return -math.log(math.exp(r[i] / tau) / sum(math.exp(v / tau) for v in r))

    strong, weak = rows(a), rows(bw)
    y_min = min(strong[i][i] for i in range(n))
    for i in range(n):
        weak[i][i] = min(weak[i][i], y_min)
    l_strong = sum(ce(strong[i], i) for i in range(n)) / n
    l_weak = sum(w[i] * ce(weak[i], i) for i in range(n)) / sum(w)
    return l_strong + l_weak


def test_official_matches_loop_reference():
    hc, hs, has_s, hw, has_w, sim = _batch()
    h_s, has_all, _ = fill_missing_strong(hs, has_s, hc)
    m = 4 + 4 + int(has_w.sum())
    sim = torch.rand(4, m, dtype=hc.dtype) + 0.1
    loss, stats = relative_contrastive_loss(
        ContrastBatch(hc, h_s, has_all, hw, has_w, sim), RCLLossConfig(variant="official", tau=0.1))
    _, weak_col = member_columns(has_all, has_w)
    weights = [sim[i, weak_col[i]].item() ** 0.1 if has_w[i] else 0.0 for i in range(4)]
    keys = torch.where(has_w[:, None], hw, hc)
    expected = reference_official(hc.tolist(), h_s.tolist(), keys.tolist(), weights, 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert 0.0 <= stats["boundary_active"] <= 1.0


def test_official_edge_cases():
    hc, hs, has_s, hw, has_w, _ = _batch()
    cfg = RCLLossConfig(variant="official", tau=0.1)
    with pytest.raises(ValueError, match="fill_missing_strong"):
        relative_contrastive_loss(ContrastBatch(hc, hs, has_s, hw, has_w, None), cfg)
    with pytest.raises(ValueError, match="official"):
        RCLLossConfig(variant="official", mask_same_target=True)
    # no weak positive anywhere: the weak term is 0, not NaN
    hc = hc.clone().requires_grad_()
    loss, stats = official_rcl_loss(hc, hs, hc, torch.zeros(4), 0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(hc.grad).all() and stats["l_weak"] == 0.0


def test_logits_stay_float32_under_autocast():
    h = torch.randn(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = pair_logits(h, h, 0.05)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, h @ h.T / 0.05)
