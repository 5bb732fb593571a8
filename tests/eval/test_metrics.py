import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.eval import ranking
from rclrec.eval.metrics import metrics_from_ranks
from rclrec.eval.ranking import NonFiniteScores, evaluate_ranking, target_ranks


def slow_metrics(ranks, ks):
    out = {}
    for k in ks:
        hr = ndcg = mrr = 0.0
        for r in ranks:
            if r < k:
                hr += 1
                ndcg += 1 / math.log2(r + 2)
                mrr += 1 / (r + 1)
        out[f"HR@{k}"], out[f"NDCG@{k}"], out[f"MRR@{k}"] = (
            hr / len(ranks), ndcg / len(ranks), mrr / len(ranks))
    return out


@given(st.lists(st.integers(0, 200), min_size=1, max_size=50))
def test_metrics_match_slow_reference(ranks):
    fast = metrics_from_ranks(np.array(ranks), (1, 5, 10, 20))
    slow = slow_metrics(ranks, (1, 5, 10, 20))
    for key, value in slow.items():
        assert fast[key] == pytest.approx(value, abs=1e-12)


@given(st.integers(0, 100), st.integers(0, 100))
def test_ndcg_in_unit_interval_and_falls_with_rank(a, b):
    ma = metrics_from_ranks(np.array([a]))
    mb = metrics_from_ranks(np.array([b]))
    for m in (ma, mb):
        assert all(0.0 <= v <= 1.0 for v in m.values())
    if a < b:
        assert ma["NDCG@20"] >= mb["NDCG@20"]


def test_hand_computed_values():
    m = metrics_from_ranks(np.array([0, 1, 10]), (5, 10))
    assert m["HR@5"] == pytest.approx(2 / 3)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["MRR@10"] == pytest.approx((1 + 0.5) / 3)
    assert m["HR@10"] == pytest.approx(2 / 3)  # rank 10 is the 11th item


def slow_rank(scores, history, target, exclude):
    t = scores[target]
    rank = 0
    for item in range(1, len(scores)):
        if item == target:
            continue
        if exclude and item in history:
            continue
        rank += scores[item] > t
    return rank


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_target_ranks_match_reference(seed, exclude):
    rng = np.random.default_rng(seed)
    b, n = 4, 12
    scores = rng.normal(size=(b, n + 1)).astype(np.float32)
    history = rng.integers(0, n + 1, size=(b, 5))
    targets = rng.integers(1, n + 1, size=b)
    got, tied = target_ranks(torch.from_numpy(scores), torch.from_numpy(history),
                             torch.from_numpy(targets), exclude)
    got = got.numpy()
    assert not tied.any()  # continuous scores: no ties
    want = [slow_rank(scores[i], set(history[i]) - {0}, targets[i], exclude) for i in range(b)]
    assert list(got) == want


def check_against_a_masked_copy(seed, exclude):
    """Few distinct scores (many ties, padding and history items among them) and repeated
    history items: higher and tied as counted on a copy with the unrankable columns at -inf."""
    rng = np.random.default_rng(seed)
    b, n = 6, 10
    scores = torch.from_numpy(rng.integers(0, 3, size=(b, n + 1)).astype(np.float32))
    history = torch.from_numpy(rng.integers(0, n + 1, size=(b, 6)))
    targets = torch.from_numpy(rng.integers(1, n + 1, size=b))
    higher, tied = target_ranks(scores, history, targets, exclude)
    for i in range(b):
        row = scores[i].clone()
        t = row[targets[i]].item()
        if exclude:
            row[history[i]] = -math.inf
        row[0] = -math.inf
        row[targets[i]] = t
        assert higher[i].item() == int((row > t).sum())
        assert tied[i].item() == int((row == t).sum()) - 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_target_ranks_count_ties_like_a_masked_copy(seed, exclude):
    check_against_a_masked_copy(seed, exclude)


def test_the_comparison_count_for_huge_item_sets_agrees(monkeypatch):
    monkeypatch.setattr(ranking, "EXACT_FLOAT_COUNT", 0)  # the path beyond 2^24 items
    for seed in range(20):
        check_against_a_masked_copy(seed, exclude=seed % 2 == 0)


def test_padding_column_is_never_ranked():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    ranks, _ = target_ranks(scores, torch.zeros(1, 1, dtype=torch.long), torch.tensor([3]), True)
    assert ranks.item() == 0


def test_history_excluded_but_target_kept():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0]])
    history = torch.tensor([[1, 3]])  # item 3 is also the target (a repeat)
    assert target_ranks(scores, history, torch.tensor([3]), True)[0].item() == 1  # only item 2
    assert target_ranks(scores, history, torch.tensor([3]), False)[0].item() == 2


def slow_expected_metrics(higher, tied, k):
    """Enumerate every rank a tied target may take, each equally likely."""
    places = range(higher, higher + tied + 1)
    hr = sum(r < k for r in places) / len(places)
    ndcg = sum(1 / math.log2(r + 2) for r in places if r < k) / len(places)
    mrr = sum(1 / (r + 1) for r in places if r < k) / len(places)
    return hr, ndcg, mrr


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=20))
def test_tied_metrics_are_the_expectation_over_random_tie_breaking(cases):
    higher = np.array([h for h, _ in cases])
    tied = np.array([t for _, t in cases])
    got = metrics_from_ranks(higher, (1, 5, 10), tied)
    for k in (1, 5, 10):
        want = np.mean([slow_expected_metrics(h, t, k) for h, t in cases], axis=0)
        assert [got[f"HR@{k}"], got[f"NDCG@{k}"], got[f"MRR@{k}"]] == pytest.approx(want)


def test_ties_with_the_target_are_counted():
    scores = torch.tensor([[0.0, 2.0, 1.0, 1.0, 1.0]])  # target 3 ties with items 2 and 4
    higher, tied = target_ranks(scores, torch.zeros(1, 1, dtype=torch.long),
                                torch.tensor([3]), True)
    assert (higher.item(), tied.item()) == (1, 2)


class ConstantEncoder(torch.nn.Module):
    """Scores every item alike (a zeroed item table), as a collapsed model would."""

    def __init__(self, num_items, fill=0.0):
        super().__init__()
        self.item_table = torch.full((num_items + 1, 4), fill)

    def last_state(self, x):
        return torch.ones(len(x), 4)


def test_constant_scores_get_chance_level_not_a_perfect_score():
    n = 500
    rng = np.random.default_rng(0)
    inputs = [rng.integers(1, n + 1, size=3) for _ in range(200)]
    targets = rng.integers(1, n + 1, size=200)
    m = evaluate_ranking(ConstantEncoder(n), inputs, targets, max_len=5, exclude_history=False)
    assert m["HR@10"] == pytest.approx(10 / n)
    assert m["NDCG@10"] < 0.02


@pytest.mark.parametrize("fill", [float("nan"), float("inf")])
def test_non_finite_scores_are_an_error(fill):
    inputs = [np.array([1, 2])]
    with pytest.raises(NonFiniteScores):
        evaluate_ranking(ConstantEncoder(10, fill), inputs, np.array([3]), max_len=5)
