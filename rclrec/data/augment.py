"""Sequence augmentations of CL4SRec (Xie et al., ICDE 2022), shared by its siblings (MCLRec's
views; ContraRec's, rclrec/methods/contrarec.py, mask and reorder with its own ratios).

All functions take a LEFT-padded int64 batch ``seqs`` of shape (B, L) (padding id 0 on the left,
the real items right-aligned, the most recent item at position L - 1), as a torch tensor or a
numpy array, and return a new batch of the same type, shape and device. The input is never
modified in place: DuoRec's CL4SRec code edits the batch tensor through a slice view, so its
"original" sequence is corrupted and the corruption persists across epochs (DuoRec issue #8,
docs/BASELINES.md section 2). Outputs stay left-padded, so ``(out != 0).sum(1)`` is the new length.

Randomness comes only from ``generator``: a ``torch.Generator``, a ``numpy.random.Generator``, or
None (the global torch RNG). With the same seed the result is reproducible.

Ratios and counts follow the authors' code (docs/BASELINES.md section 2), for a sequence of n items:
    crop(eta):    keep a contiguous window of max(1, floor(eta * n)) items at a uniform start.
    mask(gamma):  replace floor(gamma * n) distinct random items with ``mask_token``.
    reorder(beta): shuffle a contiguous window of floor(beta * n) items at a uniform start.
Sequences with n <= 1 are returned unchanged by every operator.

Default ratios (``DUOREC_RATIOS``) are those of the DuoRec repository's CL4SRec
(eta 0.6, gamma 0.3, beta 0.6); ``MCLREC_RATIOS`` and ``ICLREC_RATIOS`` are the other repos'.
A method's section sets the ratios it trains with (their defaults come from here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

PAD = 0

# Ratios of the three CL4SRec operators, by source (docs/BASELINES.md section 2).
DUOREC_RATIOS: dict[str, float] = {"crop": 0.6, "mask": 0.3, "reorder": 0.6}  # DuoRec repo
MCLREC_RATIOS: dict[str, float] = {"crop": 0.5, "mask": 0.5, "reorder": 0.8}  # MCLRec repo
ICLREC_RATIOS: dict[str, float] = {"crop": 0.2, "mask": 0.7, "reorder": 0.2}  # ICLRec repo
DEFAULT_RATIOS = DUOREC_RATIOS

OPERATORS = ("crop", "mask", "reorder")

Generator = torch.Generator | np.random.Generator | None
Ratio = float | torch.Tensor


# --------------------------------------------------------------------------------------------
# helpers


def as_tensor(seqs: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """Return (a torch int64 view of seqs, whether the input was numpy)."""
    if isinstance(seqs, np.ndarray):
        return torch.from_numpy(np.asarray(seqs, dtype=np.int64)), True
    if not isinstance(seqs, torch.Tensor):
        raise TypeError(f"seqs must be a torch.Tensor or numpy array, got {type(seqs).__name__}")
    return seqs.long(), False


def back(out: torch.Tensor, was_numpy: bool) -> torch.Tensor | np.ndarray:
    return out.numpy() if was_numpy else out


def uniform(shape: tuple[int, ...], generator: Generator, device: torch.device) -> torch.Tensor:
    """Float64 uniforms in [0, 1) of ``shape`` on ``device``, drawn from ``generator``."""
    if isinstance(generator, np.random.Generator):
        return torch.from_numpy(generator.random(shape)).to(device)
    if generator is None:
        return torch.rand(shape, dtype=torch.float64, device=device)
    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    return torch.rand(shape, generator=generator, dtype=torch.float64,
                      device=generator.device).to(device)


def _lengths(x: torch.Tensor) -> torch.Tensor:
    """Number of real items per row (B,), checking that padding is on the left only."""
    if x.dim() != 2:
        raise ValueError(f"seqs must have shape (B, L), got {tuple(x.shape)}")
    real = x != PAD
    n = real.sum(1)
    # Left padding <=> every position from L - n on is real.
    pos = torch.arange(x.shape[1], device=x.device)
    expected = pos[None, :] >= (x.shape[1] - n)[:, None]
    if not torch.equal(real, expected):
        raise ValueError("seqs must be left-padded with 0 (no 0 after the first real item)")
    return n


def _count(n: torch.Tensor, ratio: Ratio) -> torch.Tensor:
    """floor(ratio * n) per row, in float64 so it equals Python's math.floor(ratio * n)."""
    r = ratio.to(n.device, torch.float64) if isinstance(ratio, torch.Tensor) else float(ratio)
    return torch.floor(n.to(torch.float64) * r).long()


def _check_ratio(name: str, ratio: Ratio) -> None:
    lo, hi = (ratio.min().item(), ratio.max().item()) if isinstance(ratio, torch.Tensor) \
        else (ratio, ratio)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {ratio}")


def _uniform_start(n: torch.Tensor, k: torch.Tensor, generator: Generator) -> torch.Tensor:
    """A start index uniform in {0, ..., n - k} per row (random.randint(0, n - k) in DuoRec)."""
    u = uniform((n.shape[0],), generator, n.device)
    span = (n - k + 1).clamp(min=1)
    return torch.minimum(torch.floor(u * span).long(), span - 1)


# --------------------------------------------------------------------------------------------
# operators


def crop(seqs: torch.Tensor | np.ndarray, eta: Ratio = DEFAULT_RATIOS["crop"], *,
         generator: Generator = None) -> torch.Tensor | np.ndarray:
    """CL4SRec item crop: keep a random contiguous window of the sequence.

    A row with n >= 2 items keeps k = max(1, floor(eta * n)) consecutive items starting at a
    uniform position in {0, ..., n - k}; the window is left-padded again. The floor of 1 avoids the
    empty sequence the DuoRec code would produce for eta * n < 1 (never with eta = 0.6, n >= 2).

    Args:
        seqs: (B, L) int64, left-padded with 0.
        eta: fraction kept, a float or a per-row (B,) tensor, in [0, 1].
        generator: torch or numpy generator.

    Returns:
        (B, L) int64 of the same type and device as ``seqs``.
    """
    _check_ratio("eta", eta)
    x, was_numpy = as_tensor(seqs)
    n = _lengths(x)
    big = n >= 2
    k = torch.where(big, _count(n, eta).clamp(min=1), n)
    start = torch.where(big, _uniform_start(n, k, generator), torch.zeros_like(n))
    L = x.shape[1]
    pos = torch.arange(L, device=x.device)[None, :]  # (1, L)
    # Output position p >= L - k holds real item (start + p - (L - k)), at input position
    # (L - n) + start + p - (L - k) = p + k - n + start.
    src = (pos + (k - n + start)[:, None]).clamp(0, L - 1)
    out = torch.gather(x, 1, src)
    out = torch.where(pos >= (L - k)[:, None], out, torch.zeros_like(out))
    return back(out, was_numpy)


def mask(seqs: torch.Tensor | np.ndarray, gamma: Ratio = DEFAULT_RATIOS["mask"], *,
         mask_token: int, generator: Generator = None) -> torch.Tensor | np.ndarray:
    """CL4SRec item mask: replace floor(gamma * n) distinct random items with ``mask_token``.

    Short rows may get 0 masked items (floor(0.3 * 3) = 0), as in the authors' code.

    Args:
        seqs: (B, L) int64, left-padded with 0.
        gamma: fraction masked, a float or a per-row (B,) tensor, in [0, 1].
        mask_token: id of the [mask] item, normally ``num_items + 1`` (an extra embedding row the
            recommendation scores must exclude). 0 reproduces MCLRec, which masks with the padding
            id: masked items are then hidden from attention (the output is no longer strictly
            left-padded).
        generator: torch or numpy generator.

    Returns:
        (B, L) int64 of the same type and device as ``seqs``.
    """
    _check_ratio("gamma", gamma)
    if mask_token < 0:
        raise ValueError(f"mask_token must be >= 0, got {mask_token}")
    x, was_numpy = as_tensor(seqs)
    n = _lengths(x)
    k = torch.where(n >= 2, _count(n, gamma), torch.zeros_like(n))
    # Random ranks among the real positions (padding gets keys > 1 so it ranks last): the k
    # smallest keys give k distinct positions, uniform over subsets.
    keys = uniform(tuple(x.shape), generator, x.device)
    keys = torch.where(x != PAD, keys, torch.full_like(keys, 2.0))
    rank = keys.argsort(1).argsort(1)
    out = torch.where(rank < k[:, None], torch.full_like(x, mask_token), x)
    return back(out, was_numpy)


def reorder(seqs: torch.Tensor | np.ndarray, beta: Ratio = DEFAULT_RATIOS["reorder"], *,
            generator: Generator = None) -> torch.Tensor | np.ndarray:
    """CL4SRec item reorder: shuffle a random contiguous window of floor(beta * n) items.

    Args:
        seqs: (B, L) int64, left-padded with 0.
        beta: window fraction, a float or a per-row (B,) tensor, in [0, 1].
        generator: torch or numpy generator.

    Returns:
        (B, L) int64 of the same type and device as ``seqs``; each row is a permutation of the
        input row that moves items only inside the window.
    """
    _check_ratio("beta", beta)
    x, was_numpy = as_tensor(seqs)
    n = _lengths(x)
    k = torch.where(n >= 2, _count(n, beta), torch.zeros_like(n))
    start = _uniform_start(n, k, generator)
    L = x.shape[1]
    pos = torch.arange(L, device=x.device)[None, :].to(torch.float64)  # (1, L)
    lo = (L - n + start)[:, None].to(torch.float64)  # first window position
    inside = (pos >= lo) & (pos < lo + k[:, None])
    # Sort keys: positions outside keep their integer index; inside the window the keys are
    # random in [lo - 0.5, lo + k - 0.5), so the window is permuted uniformly in place.
    u = uniform(tuple(x.shape), generator, x.device)
    keys = torch.where(inside, lo - 0.5 + u * k[:, None], pos)
    out = torch.gather(x, 1, keys.argsort(1))
    return back(out, was_numpy)


# --------------------------------------------------------------------------------------------
# two views


def two_views(seqs: torch.Tensor | np.ndarray, ops: Sequence[str] = OPERATORS,
              ratios: dict[str, float] | None = None, *, mask_token: int | None = None,
              generator: Generator = None
              ) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
    """CL4SRec's two augmented views: two DIFFERENT operators per sequence, one per view.

    Per row, two operators are drawn without replacement from ``ops`` (uniformly, like
    ``random.sample(range(3), k=2)`` in DuoRec's CL4SRec); view 1 applies the first, view 2 the
    second, with independent randomness. With a single operator in ``ops`` both views use it.
    Rows with at most one item come back unchanged in both views.

    Args:
        seqs: (B, L) int64, left-padded with 0.
        ops: operator names, a subset of ("crop", "mask", "reorder").
        ratios: {"crop": eta, "mask": gamma, "reorder": beta}; missing keys take
            ``DEFAULT_RATIOS`` (DuoRec repo: 0.6, 0.3, 0.6).
        mask_token: the [mask] id, required when "mask" is in ``ops`` (normally num_items + 1).
        generator: torch or numpy generator.

    Returns:
        (view1, view2), each (B, L) int64 of the same type and device as ``seqs``.
    """
    ops = tuple(ops)
    unknown = [o for o in ops if o not in OPERATORS]
    if not ops or unknown:
        raise ValueError(f"ops must be a non-empty subset of {OPERATORS}, got {ops}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops has duplicates: {ops}")
    if "mask" in ops and mask_token is None:
        raise ValueError("mask_token is required when 'mask' is one of the operators")
    r = {**DEFAULT_RATIOS, **(ratios or {})}
    x, was_numpy = as_tensor(seqs)
    B = x.shape[0]
    # Two distinct operator indices per row: the two smallest of len(ops) random keys.
    order = uniform((B, len(ops)), generator, x.device).argsort(1)
    choice = (order[:, 0], order[:, 1] if len(ops) > 1 else order[:, 0])
    views = []
    for v in range(2):
        out = x.clone()
        for j, op in enumerate(ops):
            rows = (choice[v] == j).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            sub = x[rows]
            if op == "crop":
                out[rows] = crop(sub, r["crop"], generator=generator)
            elif op == "mask":
                out[rows] = mask(sub, r["mask"], mask_token=mask_token, generator=generator)
            else:
                out[rows] = reorder(sub, r["reorder"], generator=generator)
        views.append(back(out, was_numpy))
    return views[0], views[1]


def expected_counts(n: int, ratios: dict[str, float] | None = None) -> dict[str, int]:
    """Items kept (crop), masked (mask) and shuffled (reorder) for a sequence of n items.

    A plain-Python statement of the counts above, for tests and documentation.
    """
    r = {**DEFAULT_RATIOS, **(ratios or {})}
    if n <= 1:
        return {"crop": n, "mask": 0, "reorder": 0}
    return {"crop": max(1, math.floor(r["crop"] * n)), "mask": math.floor(r["mask"] * n),
            "reorder": math.floor(r["reorder"] * n)}
