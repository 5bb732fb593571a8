"""Baseline objectives (shared ones in rclrec/losses, the others beside their method) against
explicit-loop references on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rclrec.losses.baselines import nt_xent, supervised_contrastive
from rclrec.methods.contrarec import contrarec_ccc_loss, contrarec_ctc_loss
from rclrec.methods.ct4rec import ct4rec_rd_loss, ct4rec_ur_loss
from rclrec.methods.duorec import duorec_loss, same_target_mask
from rclrec.methods.hpm import category_sequences, cooccurrence_clusters, hpm_dual_contrastive_loss
from rclrec.methods.mclrec import (
    MCLRecConfig,
    MLPAugmenter,
    mclrec_margin_regularizer,
    mclrec_meta_loss,
    mclrec_step_loss,
)

# ---------------------------------------------------------------------------------------------
# loop references (plain Python floats)


def vec(t: torch.Tensor) -> list[list[float]]:
    return t.detach().double().tolist()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def unit(a: list[float]) -> list[float]:
    n = math.sqrt(dot(a, a))
    return [x / n for x in a]


def ref_nt_xent(z1, z2, tau=1.0, cos=False, mask=None) -> float:
    z = vec(z1) + vec(z2)
    if cos:
        z = [unit(v) for v in z]
    n = len(z) // 2
    total = 0.0
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        denom = 0.0
        for k in range(2 * n):
            if k == a:
                continue
            if mask is not None and k != p and bool(mask[a % n][k % n]):
                continue
            denom += math.exp(dot(z[a], z[k]) / tau)
        total += -math.log(math.exp(dot(z[a], z[p]) / tau) / denom)
    return total / (2 * n)


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def ref_sym_kl(l1: list[float], l2: list[float]) -> float:
    p, q = softmax(l1), softmax(l2)
    kl_pq = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)
    kl_qp = sum(b * math.log(b / a) for a, b in zip(p, q, strict=True) if b > 0)
    return 0.5 * (kl_pq + kl_qp)


def ref_supcon(z, labels, tau, normalize=True) -> float:
    z = vec(z)
    if normalize:
        z = [unit(v) for v in z]
    labels = [int(v) for v in labels]
    losses = []
    for a in range(len(z)):
        pos = [p for p in range(len(z)) if p != a and labels[p] == labels[a]]
        if not pos:
            continue
        denom = sum(math.exp(dot(z[a], z[k]) / tau) for k in range(len(z)) if k != a)
        losses.append(-sum(math.log(math.exp(dot(z[a], z[p]) / tau) / denom) for p in pos)
                      / len(pos))
    return sum(losses) / len(losses) if losses else 0.0


def grads_finite(loss: torch.Tensor, *tensors: torch.Tensor) -> bool:
    loss.backward()
    return all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in tensors)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)


# ---------------------------------------------------------------------------------------------
# CL4SRec / DuoRec


def test_nt_xent_hand_case() -> None:
    # N = 2, D = 2: z = [e1, e2, e1, -e2]; dot products are 0 or +-1.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    e = math.e
    # anchors 0 and 2 (e1): positive e1 -> exp(1); the other two (e2, -e2) -> exp(0) each.
    # anchors 1 (e2) and 3 (-e2): positive -> exp(-1); the other two (e1, e1) -> exp(0) each.
    l0 = -math.log(e / (1 + e + 1))
    l1 = -math.log((1 / e) / (1 + 1 + 1 / e))
    expected = (2 * l0 + 2 * l1) / 4
    assert nt_xent(z1, z2).item() == pytest.approx(expected, rel=1e-12)
    assert ref_nt_xent(z1, z2) == pytest.approx(expected, rel=1e-12)


def test_nt_xent_single_pair_is_zero() -> None:
    # With N = 1 the positive is the only other view: the loss is exactly 0.
    assert nt_xent(rand(1, 4), rand(1, 4, seed=1)).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("tau", [1.0, 0.3])
@pytest.mark.parametrize("similarity", ["dot", "cos"])
def test_nt_xent_matches_loop(tau: float, similarity: str) -> None:
    z1, z2 = rand(5, 3), rand(5, 3, seed=1)
    got = nt_xent(z1, z2, tau=tau, similarity=similarity)
    assert got.item() == pytest.approx(ref_nt_xent(z1, z2, tau, similarity == "cos"), rel=1e-10)
    assert grads_finite(got, z1, z2)


def test_nt_xent_same_target_mask() -> None:
    targets = torch.tensor([3, 7, 3, 9, 7])
    m = same_target_mask(targets)
    assert m.tolist() == [[targets[i] == targets[j] and i != j for j in range(5)]
                          for i in range(5)]
    z1, z2 = rand(5, 3), rand(5, 3, seed=1)
    got = nt_xent(z1, z2, mask=m)
    assert got.item() == pytest.approx(ref_nt_xent(z1, z2, mask=m.tolist()), rel=1e-10)
    assert got.item() != pytest.approx(nt_xent(z1, z2).item())
    assert grads_finite(got, z1, z2)  # the -inf entries must not give NaN gradients
    # A mask that also flags the diagonal never removes the positive pair.
    full = torch.ones(5, 5, dtype=torch.bool)
    assert nt_xent(z1, z2, mask=full).item() == pytest.approx(0.0, abs=1e-12)


def test_duorec_loss_is_nt_xent_of_the_two_views() -> None:
    h, hs = rand(4, 3), rand(4, 3, seed=2)
    assert duorec_loss(h, hs).item() == pytest.approx(ref_nt_xent(h, hs), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# CT4Rec


def test_ct4rec_rd_loss_matches_loop() -> None:
    l1, l2 = rand(2, 3, 4), rand(2, 3, 4, seed=1)
    valid = torch.tensor([[False, True, True], [True, False, True]])
    got = ct4rec_rd_loss(l1, l2, valid)
    rows = [(b, t) for b in range(2) for t in range(3) if valid[b, t]]
    expected = sum(ref_sym_kl(vec(l1[b])[t], vec(l2[b])[t]) for b, t in rows) / len(rows)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert grads_finite(got, l1, l2)
    assert ct4rec_rd_loss(l1, l1.detach()).item() == pytest.approx(0.0, abs=1e-12)
    # Clipping at 80 changes nothing for small logits.
    assert ct4rec_rd_loss(l1, l2, valid, clip=80.0).item() == pytest.approx(got.item())


def test_ct4rec_ur_loss_matches_loop() -> None:
    z1, z2 = rand(2, 3, 4), rand(2, 3, 4, seed=1)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    tau = 0.2
    got = ct4rec_ur_loss(z1, z2, valid, tau=tau)
    a = [unit(vec(z1[b])[t]) for b in range(2) for t in range(3) if valid[b, t]]
    c = [unit(vec(z2[b])[t]) for b in range(2) for t in range(3) if valid[b, t]]
    m = len(a)
    total = 0.0
    for i in range(m):
        # self excluded: the -1e4 entry has probability exactly 0
        s1 = [dot(a[i], a[j]) / tau for j in range(m) if j != i]
        s2 = [dot(c[i], c[j]) / tau for j in range(m) if j != i]
        total += ref_sym_kl(s1, s2)
    assert got.item() == pytest.approx(total / m, rel=1e-8)
    assert grads_finite(got, z1, z2)
    # (M, D) input without a mask gives the same value on the selected rows.
    flat = ct4rec_ur_loss(z1[valid].detach(), z2[valid].detach(), tau=tau)
    assert flat.item() == pytest.approx(got.item(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# MCLRec


def ref_margin(za, zb, tau=1.0) -> float:
    z = vec(za) + vec(zb)
    n = len(z) // 2
    first, second, count = 0.0, 0.0, 0
    for a in range(2 * n):
        p_idx = (a + n) % (2 * n)
        p = dot(z[a], z[p_idx]) / tau
        negs = [dot(z[a], z[k]) / tau for k in range(2 * n) if k not in (a, p_idx)]
        m = max(negs)
        first += max(0.0, p - min(p, m))
        for v in negs:
            second += max(0.0, max(p, m) - v)
            count += 1
    return first / (2 * n) + second / count


def test_mclrec_margin_regularizer_matches_loop() -> None:
    za, zb = rand(3, 4), rand(3, 4, seed=1)
    got = mclrec_margin_regularizer(za, zb, tau=0.5)
    assert got.item() == pytest.approx(ref_margin(za, zb, 0.5), rel=1e-10)
    assert grads_finite(got, za, zb)


def test_mclrec_meta_and_step_losses() -> None:
    z1, z2, z3, z4 = (rand(3, 4, seed=s) for s in range(4))
    pairs = ((z1, z4), (z2, z3), (z3, z4))
    meta_plain = sum(ref_nt_xent(a, b) for a, b in pairs)
    meta_rl = meta_plain + 0.1 * sum(ref_margin(a, b) for a, b in pairs)
    assert mclrec_meta_loss((z1, z2, z3, z4), use_rl=False).item() == pytest.approx(meta_plain)
    assert mclrec_meta_loss((z1, z2, z3, z4)).item() == pytest.approx(meta_rl)
    cl0 = ref_nt_xent(z1, z2)
    rec = torch.tensor(2.5, dtype=torch.float64)
    settings = MCLRecConfig(lmd=0.04, beta=0.4)
    s1 = mclrec_step_loss(1, rec, (z1, z2, z3, z4), settings)
    s2 = mclrec_step_loss(2, None, (z1, z2, z3, z4), settings)
    assert s1.item() == pytest.approx(2.5 + 0.04 * cl0 + 0.4 * meta_rl)
    assert s2.item() == pytest.approx(0.04 * cl0 + meta_rl)
    assert grads_finite(s1, z1, z2, z3, z4)
    with pytest.raises(ValueError):
        mclrec_step_loss(4, rec, (z1, z2, z3, z4), MCLRecConfig(lmd=0.0, beta=0.1))


def test_mlp_augmenter_shape_norm_and_grad() -> None:
    torch.manual_seed(0)
    g = MLPAugmenter(hidden_dim=8)
    z = torch.randn(5, 8, requires_grad=True)
    out = g(z)
    assert out.shape == (5, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert [m.out_features for m in (g.dense1, g.dense2, g.dense3)] == [32, 16, 8]
    loss = nt_xent(z, out)
    loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in g.parameters())


# ---------------------------------------------------------------------------------------------
# ContraRec


def test_contrarec_ctc_two_way_case() -> None:
    scores = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    tau = 0.5
    # 2-way softmax: -tau * log sigmoid((s_pos - s_neg) / tau)
    expected = sum(-tau * math.log(1 / (1 + math.exp(-(p - q) / tau))) for p, q in vec(scores)) / 2
    got = contrarec_ctc_loss(scores, tau=tau)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert grads_finite(got, scores)
    # Full scores with explicit targets: tau * cross-entropy.
    full = torch.tensor([[0.1, 0.5, -0.2]], dtype=torch.float64)
    ce = -math.log(softmax([v / tau for v in full[0].tolist()])[2])
    assert contrarec_ctc_loss(full, torch.tensor([2]), tau).item() == pytest.approx(tau * ce)


def test_contrarec_ccc_matches_loop() -> None:
    z1, z2 = rand(4, 3), rand(4, 3, seed=1)
    targets = torch.tensor([5, 8, 5, 2])
    tau = 0.2
    got = contrarec_ccc_loss(z1, z2, targets, tau)
    expected = tau * ref_supcon(torch.cat([z1, z2]), targets.tolist() * 2, tau)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert grads_finite(got, z1, z2)


def test_supervised_contrastive_without_positives_is_zero() -> None:
    z = rand(3, 2)
    loss = supervised_contrastive(z, torch.tensor([1, 2, 3]), tau=1.0)
    assert loss.item() == 0.0
    assert grads_finite(loss, z)


# ---------------------------------------------------------------------------------------------
# HPM


def test_hpm_dual_contrastive_matches_loop() -> None:
    h_item, h_cat = rand(5, 3), rand(5, 3, seed=1)
    targets = torch.tensor([4, 4, 1, 2, 3])
    item_categories = torch.tensor([0, 1, 2, 1, 2, 3])  # item id -> category
    cats = [int(item_categories[t]) for t in targets]  # [2, 2, 1, 2, 1]
    tau = 0.7
    expected = (ref_supcon(h_item, targets.tolist(), tau, normalize=False)
                + ref_supcon(h_cat, cats, tau, normalize=False))
    got = hpm_dual_contrastive_loss(h_item, h_cat, targets, item_categories, tau=tau)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert grads_finite(got, h_item, h_cat)
    with_cross = hpm_dual_contrastive_loss(h_item, h_cat, targets, item_categories, tau=tau,
                                           cross_weight=0.5)
    assert with_cross.item() == pytest.approx(
        expected + 0.5 * ref_nt_xent(h_item, h_cat, tau), rel=1e-10)


def test_category_sequences_keeps_padding() -> None:
    seqs = torch.tensor([[0, 0, 1, 3], [0, 2, 4, 5]])
    item_categories = torch.tensor([7, 1, 2, 1, 3, 3])
    assert category_sequences(seqs, item_categories).tolist() == [[0, 0, 1, 1], [0, 2, 3, 3]]


def test_cooccurrence_clusters_recovers_communities() -> None:
    rng = np.random.default_rng(0)
    seqs = [rng.permutation(np.arange(1, 6))[:4] for _ in range(20)]
    seqs += [rng.permutation(np.arange(6, 11))[:4] for _ in range(20)]
    cats = cooccurrence_clusters(seqs, num_items=10, num_clusters=2, seed=0)
    assert cats.shape == (11,) and cats.dtype == np.int64 and cats[0] == 0
    assert set(cats[1:].tolist()) == {1, 2}
    assert len(set(cats[1:6].tolist())) == 1 and len(set(cats[6:11].tolist())) == 1
    assert cats[1] != cats[6]
    np.testing.assert_array_equal(cats, cooccurrence_clusters(seqs, 10, 2, seed=0))
    assert set(cooccurrence_clusters(seqs, 10, 1).tolist()) == {0, 1}
    with pytest.raises(ValueError):
        cooccurrence_clusters(seqs, 10, 0)
