import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.eval.metrics import metrics_from_ranks
from rclrec.eval.ranking import target_ranks


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
    got = target_ranks(torch.from_numpy(scores), torch.from_numpy(history),
                       torch.from_numpy(targets), exclude).numpy()
    want = [slow_rank(scores[i], set(history[i]) - {0}, targets[i], exclude) for i in range(b)]
    assert list(got) == want


def test_padding_column_is_never_ranked():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    ranks = target_ranks(scores, torch.zeros(1, 1, dtype=torch.long), torch.tensor([3]), True)
    assert ranks.item() == 0


def test_history_excluded_but_target_kept():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0]])
    history = torch.tensor([[1, 3]])  # item 3 is also the target (a repeat)
    assert target_ranks(scores, history, torch.tensor([3]), True).item() == 1  # only item 2
    assert target_ranks(scores, history, torch.tensor([3]), False).item() == 2
