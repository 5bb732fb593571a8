"""CL4SRec / ContraRec augmentations: validity, ratios, no in-place edits, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.data.augment import (
    DEFAULT_RATIOS,
    crop,
    expected_counts,
    mask,
    reorder,
    two_views,
)
from rclrec.methods.contrarec import _beta_integer, contrarec_view

MASK = 99  # larger than every item id used below


def make_batch(seed: int, batch: int = 16, max_len: int = 12, num_items: int = 20) -> torch.Tensor:
    """Left-padded (B, L) batch with lengths 0..max_len (0 and 1 included)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, max_len), dtype=np.int64)
    for i in range(batch):
        n = [0, 1, max_len][i] if i < 3 else int(rng.integers(0, max_len + 1))
        if n:
            x[i, max_len - n:] = rng.integers(1, num_items + 1, size=n)
    return torch.from_numpy(x)


def real(row: torch.Tensor) -> list[int]:
    return [int(v) for v in row if v != 0]


def assert_left_padded(x: torch.Tensor) -> None:
    for row in x:
        nz = (row != 0).nonzero().flatten()
        if len(nz):
            assert bool((row[int(nz[0]):] != 0).all()), row


def check_crop(x: torch.Tensor, out: torch.Tensor, eta: float) -> None:
    assert_left_padded(out)
    for a, b in zip(x, out, strict=True):
        src, got = real(a), real(b)
        n = len(src)
        k = n if n <= 1 else max(1, math.floor(eta * n))
        assert len(got) == k
        assert any(src[s:s + k] == got for s in range(n - k + 1))  # a contiguous window


def check_mask(x: torch.Tensor, out: torch.Tensor, gamma: float) -> None:
    assert_left_padded(out)
    for a, b in zip(x, out, strict=True):
        src, got = real(a), real(b)
        n = len(src)
        assert len(got) == n
        k = 0 if n <= 1 else math.floor(gamma * n)
        assert sum(v == MASK for v in got) == k
        assert all(g in (s, MASK) for s, g in zip(src, got, strict=True))


def check_reorder(x: torch.Tensor, out: torch.Tensor, beta: float) -> None:
    assert_left_padded(out)
    for a, b in zip(x, out, strict=True):
        src, got = real(a), real(b)
        n = len(src)
        assert sorted(got) == sorted(src)
        changed = [i for i in range(n) if src[i] != got[i]]
        k = 0 if n <= 1 else math.floor(beta * n)
        if changed:
            assert changed[-1] - changed[0] + 1 <= k  # moves stay inside one window of k items


@pytest.mark.parametrize("ratio", [0.2, 0.5, DEFAULT_RATIOS["crop"], 1.0])
def test_crop_valid_and_ratio(ratio: float) -> None:
    x = make_batch(0)
    before = x.clone()
    out = crop(x, ratio, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, before)  # input unchanged
    assert out.shape == x.shape and out.dtype == torch.int64
    check_crop(x, out, ratio)


@pytest.mark.parametrize("ratio", [0.0, DEFAULT_RATIOS["mask"], 0.7, 1.0])
def test_mask_valid_and_ratio(ratio: float) -> None:
    x = make_batch(1)
    before = x.clone()
    out = mask(x, ratio, mask_token=MASK, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, before)
    check_mask(x, out, ratio)


@pytest.mark.parametrize("ratio", [0.2, DEFAULT_RATIOS["reorder"], 1.0])
def test_reorder_valid_and_ratio(ratio: float) -> None:
    x = make_batch(2)
    before = x.clone()
    out = reorder(x, ratio, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, before)
    check_reorder(x, out, ratio)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.floats(0.0, 1.0))
def test_operators_property(seed: int, ratio: float) -> None:
    x = make_batch(seed, batch=6, max_len=9)
    g = np.random.default_rng(seed)
    check_crop(x, crop(x, ratio, generator=g), ratio)
    check_mask(x, mask(x, ratio, mask_token=MASK, generator=g), ratio)
    check_reorder(x, reorder(x, ratio, generator=g), ratio)


def test_reorder_shuffles_the_whole_window_uniformly() -> None:
    # beta = 1 on 3 items: all 6 permutations, each about 1/6 of the time.
    x = torch.tensor([[0, 1, 2, 3]]).repeat(1200, 1)
    out = reorder(x, 1.0, generator=torch.Generator().manual_seed(0))
    counts: dict[tuple[int, ...], int] = {}
    for row in out.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert len(counts) == 6
    assert min(counts.values()) > 120


def test_short_sequences_unchanged() -> None:
    x = torch.tensor([[0, 0, 0], [0, 0, 5]])
    g = torch.Generator().manual_seed(0)
    for out in (crop(x, 0.1, generator=g), mask(x, 1.0, mask_token=MASK, generator=g),
                reorder(x, 1.0, generator=g),
                *two_views(x, mask_token=MASK, generator=g)):
        assert torch.equal(out, x)


def test_numpy_in_numpy_out_and_seeded() -> None:
    x = make_batch(3).numpy()
    before = x.copy()
    a = crop(x, generator=np.random.default_rng(7))
    b = crop(x, generator=np.random.default_rng(7))
    assert isinstance(a, np.ndarray) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    t1 = two_views(torch.from_numpy(x), mask_token=MASK, generator=torch.Generator().manual_seed(5))
    t2 = two_views(torch.from_numpy(x), mask_token=MASK, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(t1, t2, strict=True))


def test_rejects_right_padding_and_bad_args() -> None:
    with pytest.raises(ValueError, match="left-padded"):
        crop(torch.tensor([[1, 2, 0]]))
    with pytest.raises(ValueError):
        crop(torch.tensor([[1, 2]]), 1.5)
    with pytest.raises(ValueError, match="mask_token"):
        two_views(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError):
        two_views(torch.tensor([[1, 2]]), ops=("crop", "shuffle"))


def test_two_views_use_two_different_operators() -> None:
    # crop (eta 0.5) shortens every row of >= 4 items and adds no mask token; mask (gamma 0.5)
    # keeps the length and adds floor(n / 2) mask tokens: each row must get one of each.
    x = make_batch(4, batch=40, max_len=10)
    x[:, -4:] = torch.randint(1, 20, (40, 4))  # every row has >= 4 items
    before = x.clone()
    v1, v2 = two_views(x, ops=("crop", "mask"), ratios={"crop": 0.5, "mask": 0.5},
                       mask_token=MASK, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    first_is_crop = 0
    for a, b, c in zip(x, v1, v2, strict=True):
        n = len(real(a))
        kinds = []
        for v in (b, c):
            is_crop = len(real(v)) < n and MASK not in real(v)
            is_mask = len(real(v)) == n and real(v).count(MASK) == n // 2
            assert is_crop != is_mask
            kinds.append("crop" if is_crop else "mask")
        assert kinds[0] != kinds[1]
        first_is_crop += kinds[0] == "crop"
        check_crop(a[None], (b if kinds[0] == "crop" else c)[None], 0.5)
    assert 5 < first_is_crop < 35  # the order is random


def test_two_views_three_ops_valid() -> None:
    x = make_batch(5, batch=30)
    v1, v2 = two_views(x, mask_token=MASK, generator=torch.Generator().manual_seed(1))
    for v in (v1, v2):
        assert_left_padded(v)
        for a, b in zip(x, v, strict=True):
            assert set(real(b)) <= set(real(a)) | {MASK}
    assert not torch.equal(v1, v2)


def test_contrarec_view_is_mask_or_reorder() -> None:
    x = make_batch(6, batch=60, max_len=10)
    before = x.clone()
    out = contrarec_view(x, mask_token=MASK, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    kinds = set()
    for a, b in zip(x, out, strict=True):
        src, got = real(a), real(b)
        assert len(got) == len(src)
        if MASK in got:
            kinds.add("mask")
            assert all(g in (s, MASK) for s, g in zip(src, got, strict=True))
        else:
            assert sorted(got) == sorted(src)
            kinds.add("reorder" if got != src else "same")
    assert {"mask", "reorder"} <= kinds


def test_beta_integer_sampler_moments() -> None:
    s = _beta_integer(3, 3, 4000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert abs(s.mean().item() - 0.5) < 0.02
    assert abs(s.var().item() - 1 / 28) < 0.005  # Var Beta(3, 3) = 9 / (36 * 7)


def test_expected_counts_defaults() -> None:
    assert expected_counts(10) == {"crop": 6, "mask": 3, "reorder": 6}
    assert expected_counts(1) == {"crop": 1, "mask": 0, "reorder": 0}
