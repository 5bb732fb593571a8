"""Relative contrastive loss (RCL, Wang et al., CIKM 2024, Sec. 3.2) as pure tensor functions.

Setting (docs/METHOD.md section 4). A batch holds B centre sequences u with representations h_u.
Each centre has at most one sampled strong positive a (a same-target sequence) and at most one
sampled weak positive b (a similar sequence). A is every sequence encoded in the batch, stacked
in this order (``stack_members``)::

    A = [ h_centre (B rows) ; h_strong[has_strong] ; h_weak[has_weak] ]     M = B + #a + #b

so centre i is member i, and absent positives are not members. With z_uc = h_u.h_c / tau,

    l(u, x)   = -log( exp(z_ux) / sum_{c in A, c != u} exp(z_uc) )                   (12)
    Lmax_u    = l(u, a)                   (one sampled strong positive)               (13)
    l_w(u, x) = -log( s_ux exp(z_ux) / sum_{c in A, c != u} s_uc exp(z_uc) )         (16)
    L_wRCL    = sum_u [ l(u, a) + max( l_w(u, b), Lmax_u ) ]                          (17)
    L_RCL     = the same with l in place of l_w ("unweight")                          (14)
    no strong positive: l_w(u, b) only (or l(u, b))                                   (15)

"c != u" removes the centre's own row (column i for centre i) only; another encoding of the same
sequence elsewhere in A stays a negative unless ``mask_same_target`` removes it. A centre with a
strong but no weak positive contributes l(u, a) alone (the sum over WP_u in Eq. 17 is empty); a
centre with neither contributes nothing. The loss is the mean over the centres that contribute
(0, with zero gradients, when none does).

The similarity weights s_uc are constants (no gradient flows into them). Where s_uc = 0 the term
leaves the denominator of Eq. 16 (paper-exact); ``weight_floor`` eps uses s + eps instead. A weak
pair whose own weight s_ub is 0 would have an infinite loss: it is dropped and counted in the
statistics (``weak_zero_weight``), which should stay 0 since the sampler only draws s > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from rclrec.devices import to_device

VARIANTS = ("rcl", "unweight", "weak", "strong", "three_pairs", "official")
OFFICIAL_WEIGHT_POWER = 0.1  # the official code's `smooth_loss`: weight_i = s(u_i, b_i) ** 0.1
SIMILARITIES = ("dot", "cosine")


@dataclass(frozen=True)
class RCLLossConfig:
    """Settings of the relative contrastive loss.

    Attributes:
        variant: "rcl" (Eq. 17, weighted), "unweight" (Eq. 14), "weak" (Eq. 15 for every centre
            with a weak positive), "strong" (l(u, a) only; see ``fill_missing_strong`` for the
            dropout-view fallback) or "three_pairs" (Eq. 19).
        tau: temperature of Eq. 12 and 16.
        mask_same_target: remove in-batch members with the centre's target (false negatives)
            from the denominators of l and l_w; the pair's own positive is never removed.
            Off by default: the paper does not mask.
        similarity: "dot" (paper: raw dot products) or "cosine" (L2-normalised representations).
        weight_floor: eps added to every weight s_uc of Eq. 16; 0 is paper-exact (terms with
            s_uc = 0 vanish from the weighted denominator).
        official_weight_power: the "official" variant's weight s(u, b) ** power.
    """

    variant: str = "rcl"
    tau: float = 1.0
    mask_same_target: bool = False
    similarity: str = "dot"
    weight_floor: float = 0.0
    official_weight_power: float = OFFICIAL_WEIGHT_POWER

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity={self.similarity!r} is not one of "
                             f"{', '.join(SIMILARITIES)}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not self.weight_floor >= 0:
            raise ValueError(f"weight_floor must be >= 0, got {self.weight_floor}")
        if self.variant == "official" and (self.mask_same_target or self.similarity != "dot"
                                           or self.weight_floor):
            raise ValueError("variant 'official' has no mask_same_target, similarity or "
                             "weight_floor options (the authors' code has none)")

    @property
    def weighted(self) -> bool:
        """Whether the variant uses the similarity weights of Eq. 16."""
        return self.variant in ("rcl", "weak")


# ---------------------------------------------------------------- the members of A


def stack_members(centre: Tensor, strong: Tensor | None, has_strong: Tensor | None,
                  weak: Tensor | None, has_weak: Tensor | None) -> Tensor:
    """Stack centres and their present positives in the column order of A.

    Works for representations (B, D) and for per-row ids or targets (B,) alike, so the caller
    can build ``member_targets`` or look up ``similarity`` columns in the same order.

    Args:
        centre: (B, ...) centres.
        strong: (B, ...) strong positives (rows where ``has_strong`` is False are ignored) or None.
        has_strong: (B,) bool or None (= none present). A mask on the CPU selects rows on
            another device by indices found on the CPU: a mask on a GPU would make it wait
            for the count of rows.
        weak: (B, ...) weak positives or None.
        has_weak: (B,) bool or None.

    Returns:
        (M, ...) with M = B + has_strong.sum() + has_weak.sum().
    """
    parts = [centre]
    if strong is not None and has_strong is not None:
        parts.append(_present(strong, has_strong))
    if weak is not None and has_weak is not None:
        parts.append(_present(weak, has_weak))
    return torch.cat(parts)


def _present(rows: Tensor, mask: Tensor) -> Tensor:
    """``rows[mask]``, by indices found where the mask is (see ``stack_members``)."""
    if mask.device == rows.device:
        return rows[mask]
    return rows[to_device(mask.nonzero().squeeze(1), rows.device)]


def member_columns(has_strong: Tensor, has_weak: Tensor) -> tuple[Tensor, Tensor]:
    """Column in A of each centre's strong and weak positive (order of ``stack_members``).

    Args:
        has_strong: (B,) bool.
        has_weak: (B,) bool.

    Returns:
        strong_col, weak_col: (B,) long, -1 where the positive is absent.
    """
    b = has_strong.shape[0]
    n_strong = has_strong.sum()
    strong_col = torch.where(has_strong, b + torch.cumsum(has_strong.long(), 0) - 1, -1)
    weak_col = torch.where(has_weak, b + n_strong + torch.cumsum(has_weak.long(), 0) - 1, -1)
    return strong_col, weak_col


def fill_missing_strong(h_strong: Tensor | None, has_strong: Tensor | None,
                        h_view: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Use a second (dropout) view of the centre where no strong positive exists.

    For the "strong" ablation (Fig. 3, as in DuoRec): pass the results as ``h_strong``,
    ``has_strong`` and ``strong_is_view`` of ``relative_contrastive_loss``. The view has the
    centre's target, so ``member_targets`` of those slots is the centre's target, as for a real
    strong positive.

    Args:
        h_strong: (B, D) strong positives or None.
        has_strong: (B,) bool or None.
        h_view: (B, D) the centres encoded again with another dropout mask.

    Returns:
        h_strong (B, D), has_strong (B,) all True, is_view (B,) bool (True where filled).
    """
    if h_strong is None or has_strong is None:
        is_view = torch.ones(h_view.shape[0], dtype=torch.bool, device=h_view.device)
        return h_view, is_view.clone(), is_view
    is_view = ~has_strong
    return torch.where(has_strong[:, None], h_strong, h_view), torch.ones_like(has_strong), is_view


# ---------------------------------------------------------------- building blocks


def pair_logits(h_centre: Tensor, members: Tensor, tau: float, similarity: str = "dot") -> Tensor:
    """z_uc = sim(h_u, h_c) / tau for every centre and member.

    Args:
        h_centre: (B, D).
        members: (M, D), the first B rows being the centres.
        tau: temperature.
        similarity: "dot" or "cosine".

    Returns:
        (B, M) logits, at least float32 even under autocast (raw dot products over a small tau
        reach the hundreds, where bfloat16 steps are several units).
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity={similarity!r} is not one of {', '.join(SIMILARITIES)}")
    dtype = torch.promote_types(h_centre.dtype, torch.float32)
    with torch.autocast(h_centre.device.type, enabled=False):
        h_centre, members = h_centre.to(dtype), members.to(dtype)
        if similarity == "cosine":
            h_centre, members = F.normalize(h_centre, dim=-1), F.normalize(members, dim=-1)
        return h_centre @ members.T / tau


def same_target_mask(centre_targets: Tensor, member_targets: Tensor) -> Tensor:
    """(B, M) bool, True where member c has centre u's target (in-batch false negatives)."""
    return centre_targets[:, None] == member_targets[None, :]


def _dropped(logits: Tensor, pos: Tensor, valid: Tensor, exclude: Tensor | None) -> Tensor:
    """(B, M) bool: columns left out of each row's denominator."""
    b, m = logits.shape
    rows = torch.arange(b, device=logits.device)
    drop = torch.zeros(b, m, dtype=torch.bool, device=logits.device)
    drop[rows, rows] = True  # c != u
    if exclude is not None:
        drop = drop | exclude
    drop[rows, pos] = False  # the pair's own positive is always in its denominator
    # Rows without a positive keep every column, so their (discarded) value stays finite and
    # torch.where passes them a finite zero gradient instead of NaN.
    return drop & valid[:, None]


def pair_losses(logits: Tensor, pos_col: Tensor, exclude: Tensor | None = None) -> Tensor:
    """l(u, x) of Eq. 12 for one positive column per centre.

    Args:
        logits: (B, M) z_uc from ``pair_logits``; column i is centre i itself (left out).
        pos_col: (B,) long column of x in A, -1 = no positive (loss 0).
        exclude: (B, M) bool, further columns to leave out of the denominators
            (e.g. ``same_target_mask``); never applied to the positive column.

    Returns:
        (B,) losses, 0 where pos_col is -1.
    """
    valid = pos_col >= 0
    pos = pos_col.clamp(min=0)
    drop = _dropped(logits, pos, valid, exclude)
    log_denominator = torch.logsumexp(logits.masked_fill(drop, float("-inf")), dim=1)
    loss = log_denominator - logits.gather(1, pos[:, None]).squeeze(1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def weighted_pair_losses(logits: Tensor, weights: Tensor, pos_col: Tensor,
                         exclude: Tensor | None = None, weight_floor: float = 0.0) -> Tensor:
    """l_w(u, x) of Eq. 16: every exp term multiplied by the similarity s_uc.

    Computed as logsumexp_c(z_uc + log s_uc) - (z_ux + log s_ux), so members with s_uc = 0 drop
    out of the denominator exactly (log 0 = -inf) unless ``weight_floor`` > 0.

    Args:
        logits: (B, M) z_uc from ``pair_logits``.
        weights: (B, M) similarities s_uc >= 0 (treated as constants).
        pos_col: (B,) long column of x, -1 = no positive.
        exclude: (B, M) bool, further columns to leave out (never the positive).
        weight_floor: eps added to every weight.

    Returns:
        (B,) losses, 0 where pos_col is -1 or where s_ux + eps = 0 (see ``positive_weight``).
    """
    w = weights.detach().to(logits.dtype) + weight_floor
    valid = (pos_col >= 0) & (positive_weight(w, pos_col) > 0)
    pos = pos_col.clamp(min=0)
    # Invalid rows get weight 1 everywhere: a finite stand-in that torch.where discards.
    log_w = torch.where(valid[:, None], torch.log(w), torch.zeros_like(w))
    scores = logits + log_w
    drop = _dropped(logits, pos, valid, exclude)
    log_denominator = torch.logsumexp(scores.masked_fill(drop, float("-inf")), dim=1)
    loss = log_denominator - scores.gather(1, pos[:, None]).squeeze(1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def positive_weight(weights: Tensor, pos_col: Tensor) -> Tensor:
    """(B,) s_ux of each centre's positive column, 0 where pos_col is -1."""
    got = weights.gather(1, pos_col.clamp(min=0)[:, None]).squeeze(1)
    return torch.where(pos_col >= 0, got, torch.zeros_like(got))


# ---------------------------------------------------------------- the official code's loss


def official_rcl_loss(h_query: Tensor, h_strong: Tensor, h_weak: Tensor, weak_weight: Tensor,
                      tau: float = 0.1) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the authors' code (docs/BASELINES.md section 10.5), for comparison only.

    Not the paper: the negatives of row i are the other rows' keys (not A), each row of the
    logit matrix is L2-normalised, the boundary is one batch-wide minimum of the strong logits
    applied in logit space, and the weight multiplies the whole weak loss of a row.

        S = normalize_rows(q a^T),  L_strong = CE(S / tau, diag)
        W = normalize_rows(q b^T),  W_ii <- min(W_ii, min_j S_jj)
        L_weak = sum_i w_i CE_i(W / tau, diag) / sum_i w_i

    Args:
        h_query: (B, D) centres.
        h_strong: (B, D) strong keys for every row (the code falls back to the centre itself).
        h_weak: (B, D) weak keys for every row (fallback: the centre itself, with weight 0).
        weak_weight: (B,) w_i >= 0 (the code: similarity ** 0.1, 0 for the fallback).
        tau: temperature (0.1 in the code).

    Returns:
        loss: L_strong + L_weak (the code scales each by lambda = 0.1; so should the caller).
        stats: 0-d tensors: ``boundary_active`` (share of weighted rows whose weak logit was
            clamped), ``l_strong``, ``l_weak``.
    """
    dtype = torch.promote_types(h_query.dtype, torch.float32)
    q, a, w_keys = h_query.to(dtype), h_strong.to(dtype), h_weak.to(dtype)
    labels = torch.arange(q.shape[0], device=q.device)
    with torch.autocast(q.device.type, enabled=False):  # float32 logits, as in pair_logits
        strong = F.normalize(q @ a.T, dim=-1)  # (B, B)
        weak = F.normalize(q @ w_keys.T, dim=-1)  # (B, B)
    l_strong = F.cross_entropy(strong / tau, labels)
    y_min = strong.diagonal().min()
    clamped = weak.diagonal() > y_min
    diagonal = torch.where(clamped, y_min, weak.diagonal())
    weak = weak - torch.diag_embed(weak.diagonal()) + torch.diag_embed(diagonal)
    per_row = F.cross_entropy(weak / tau, labels, reduction="none")
    weight = weak_weight.detach().to(dtype)
    l_weak = (weight * per_row).sum() / weight.sum().clamp(min=torch.finfo(dtype).tiny)
    with torch.no_grad():
        active = weight > 0
        values = torch.stack([
            (clamped & active).sum().float() / active.sum().clamp(min=1).float(),
            l_strong.float(), l_weak.float()])
    return l_strong + l_weak, dict(zip(("boundary_active", "l_strong", "l_weak"),
                                       values.unbind(), strict=True))


# ---------------------------------------------------------------- the loss


@dataclass(frozen=True)
class ContrastBatch:
    """One step's representations and what the loss needs to know about them.

    The masks (``has_strong``, ``has_weak``, ``strong_is_view``) may be on the host, and
    should be when the representations are on a GPU: the loss selects the members of A and
    checks the masks where they are, and on a GPU either would make the host wait for the
    device; it copies them to the representations' device itself (without waiting).

    Attributes:
        centre: (B, D) centre representations h_u.
        strong: (B, D) sampled strong positives h_a, or None for none.
        has_strong: (B,) bool, which rows of ``strong`` are present (None = none).
        weak: (B, D) sampled weak positives h_b, or None.
        has_weak: (B,) bool, which rows of ``weak`` are present (None = none).
        similarity: (B, M) float s_uc between centre u and every member c of A, in the column
            order of ``stack_members``; needed by the weighted variants ("rcl", "weak").
        centre_targets: (B,) target item of each centre (for ``mask_same_target``).
        member_targets: (M,) target item of each member of A, same column order (strong slots
            carry the centre's target).
        strong_is_view: (B,) bool, rows whose strong positive is a dropout view of the centre
            itself (``fill_missing_strong``); only counted in the statistics.
    """

    centre: Tensor
    strong: Tensor | None = None
    has_strong: Tensor | None = None
    weak: Tensor | None = None
    has_weak: Tensor | None = None
    similarity: Tensor | None = None
    centre_targets: Tensor | None = None
    member_targets: Tensor | None = None
    strong_is_view: Tensor | None = None


def relative_contrastive_loss(batch: ContrastBatch, cfg: RCLLossConfig | None = None
                              ) -> tuple[Tensor, dict[str, Tensor | float]]:
    """Relative contrastive loss of one batch (Eq. 12-17, 19), mean over contributing centres.

    Per centre u (a = strong positive, b = weak positive, present or not):

    - "rcl":         l(u,a) + max(l_w(u,b), l(u,a))   if a and b   (Eq. 17)
                     l(u,a)                            if a only
                     l_w(u,b)                          if b only    (Eq. 15)
    - "unweight":    the same with l(u,b) in place of l_w(u,b)      (Eq. 14)
    - "weak":        l_w(u,b) if b                                  (Eq. 15 only)
    - "strong":      l(u,a) if a; pass a dropout view as a where SP_u is empty
                     (``fill_missing_strong``)
    - "three_pairs": l(u,a) + l(u,b) + softplus(z_ub - z_ua)        (Eq. 19)
                     the last term is InfoNCE with a as the positive and b as the only negative
                     (only when both exist); it pushes b away from u.
    - "official":    the authors' code (``official_rcl_loss``); needs a strong key in every row
                     (``fill_missing_strong``); rows without a weak positive use the centre
                     itself with weight 0; the weight is s_ub ** 0.1 (1 without ``similarity``).

    The max is the boundary: while l_w(u,b) < l(u,a) the second term's gradient goes to the
    strong pair, not to b (ties go to b).

    Every positive passed is a member of A (a negative for the other centres), whatever the
    variant: for "strong" pass no weak positives, for "weak" no strong ones, unless they should
    serve as extra negatives.

    Args:
        batch: the centres, their positives, the similarity weights and the targets
            (:class:`ContrastBatch`).
        cfg: loss settings; default ``RCLLossConfig()``.

    Returns:
        loss: scalar tensor.
        stats: 0-d tensors, unread (a read would wait for the device): ``contributing``
            (share of centres with a term), ``strong``, ``weak``, ``both`` (shares with a
            strong / weak / both positives), ``boundary_active`` (among centres with both, the
            share where l_w(u,b) < l(u,a), i.e. the gradient goes to the strong pair),
            ``l_strong`` and ``l_weak`` (means of l(u,a) and of the weak pair loss used, 0 if
            none), ``weak_zero_weight`` (weak pairs dropped for s_ub = 0),
            ``self_view`` (share of strong positives that are self views); ``members`` (M, a
            float).

    Raises:
        ValueError: missing similarity for a weighted variant, missing targets with
            ``mask_same_target``, negative similarities, or mismatched shapes. Negative
            similarities are caught here only in CPU tensors (on a GPU the check would make
            the host wait for the device): check weights on another device where they are
            made (RCL checks its host array; ``SimilarityIndex.load`` its file).
    """
    cfg = cfg or RCLLossConfig()
    h_centre, h_strong, h_weak = batch.centre, batch.strong, batch.weak
    similarity = batch.similarity
    b = h_centre.shape[0]
    device = h_centre.device
    no = torch.zeros(b, dtype=torch.bool)
    # The masks where the caller has them (best on the host: checking them and selecting by
    # them then reads nothing back from the device), and their copies on the device for the
    # arithmetic.
    given_strong = no if h_strong is None or batch.has_strong is None else batch.has_strong.bool()
    given_weak = no if h_weak is None or batch.has_weak is None else batch.has_weak.bool()
    has_strong, has_weak = to_device(given_strong, device), to_device(given_weak, device)
    no = to_device(no, device)
    for name, h in (("h_strong", h_strong), ("h_weak", h_weak)):
        if h is not None and h.shape != h_centre.shape:
            raise ValueError(f"{name} has shape {tuple(h.shape)}, expected {tuple(h_centre.shape)}")
    if cfg.variant == "official":
        if h_strong is None or not bool(given_strong.all()):
            raise ValueError("variant 'official' needs a strong key in every row; fill the "
                             "missing ones with fill_missing_strong (the code used the centre "
                             "itself)")
        return _official(batch, has_weak, cfg)

    members = stack_members(h_centre, h_strong, given_strong, h_weak, given_weak)  # (M, D)
    m = members.shape[0]
    strong_col, weak_col = member_columns(has_strong, has_weak)
    logits = pair_logits(h_centre, members, cfg.tau, cfg.similarity)  # (B, M)

    exclude = None
    if cfg.mask_same_target:
        centre_targets, member_targets = batch.centre_targets, batch.member_targets
        if centre_targets is None or member_targets is None:
            raise ValueError("mask_same_target needs centre_targets (B,) and member_targets (M,)")
        if centre_targets.shape != (b,) or member_targets.shape != (m,):
            raise ValueError(f"targets have shapes {tuple(centre_targets.shape)} and "
                             f"{tuple(member_targets.shape)}, expected ({b},) and ({m},)")
        exclude = same_target_mask(centre_targets, member_targets)

    weak_zero = no
    if cfg.weighted:
        if similarity is None:
            raise ValueError(f"variant {cfg.variant!r} needs the (B, M) similarity weights")
        if similarity.shape != (b, m):
            raise ValueError(f"similarity has shape {tuple(similarity.shape)}, expected ({b}, {m})")
        # Checked only where it costs no device read (see Raises).
        if similarity.device.type == "cpu" and bool((similarity < 0).any()):
            raise ValueError("similarity weights must be >= 0")
        s_pos = positive_weight(similarity.detach() + cfg.weight_floor, weak_col)
        weak_zero = has_weak & (s_pos <= 0)
        has_weak = has_weak & ~weak_zero
        l_weak = weighted_pair_losses(logits, similarity, weak_col, exclude, cfg.weight_floor)
    else:
        l_weak = pair_losses(logits, weak_col, exclude)
    l_strong = pair_losses(logits, strong_col, exclude)

    zero = torch.zeros_like(l_strong)
    both = has_strong & has_weak
    boundary = both & (l_weak < l_strong)
    if cfg.variant in ("rcl", "unweight"):
        relative = torch.where(boundary, l_strong, l_weak)  # max(l_w(u,b), Lmax_u), Eq. 17
        per_centre = (torch.where(has_strong, l_strong, zero)
                      + torch.where(both, relative, zero)
                      + torch.where(has_weak & ~has_strong, l_weak, zero))
        contributes = has_strong | has_weak
    elif cfg.variant == "weak":
        per_centre = torch.where(has_weak, l_weak, zero)
        contributes = has_weak
    elif cfg.variant == "strong":
        per_centre = torch.where(has_strong, l_strong, zero)
        contributes = has_strong
    else:  # three_pairs, Eq. 19
        rows = torch.arange(b, device=device)
        z_a = logits[rows, strong_col.clamp(min=0)]
        z_b = logits[rows, weak_col.clamp(min=0)]
        push = F.softplus(z_b - z_a)  # -log(e^{z_a} / (e^{z_a} + e^{z_b}))
        per_centre = (torch.where(has_strong, l_strong, zero) + torch.where(has_weak, l_weak, zero)
                      + torch.where(both, push, zero))
        contributes = has_strong | has_weak

    n = contributes.sum()
    loss = per_centre.sum() / n.clamp(min=1).to(per_centre.dtype)

    with torch.no_grad():
        def share(x: Tensor, of: Tensor | int = b) -> Tensor:
            total = of.sum().clamp(min=1).float() if isinstance(of, Tensor) else max(of, 1)
            return x.sum().float() / total

        def mean(x: Tensor, where: Tensor) -> Tensor:
            return torch.where(where, x, zero).sum().float() / where.sum().clamp(min=1).float()

        view = (no if batch.strong_is_view is None
                else to_device(batch.strong_is_view.bool(), device) & has_strong)
        values = torch.stack([
            share(contributes), share(has_strong), share(has_weak), share(both),
            share(boundary, both), mean(l_strong, has_strong), mean(l_weak, has_weak),
            weak_zero.sum().float(), share(view, has_strong),
        ])  # not read here: a read waits for the device
    keys = ("contributing", "strong", "weak", "both", "boundary_active", "l_strong", "l_weak",
            "weak_zero_weight", "self_view")
    stats = dict(zip(keys, values.unbind(), strict=True))
    stats["members"] = float(m)
    return loss, stats


def _official(batch: ContrastBatch, has_weak: Tensor,
              cfg: RCLLossConfig) -> tuple[Tensor, dict[str, float | Tensor]]:
    """Adapt the arguments of ``relative_contrastive_loss`` to ``official_rcl_loss`` (every
    row has a strong key)."""
    h_centre, h_strong, h_weak = batch.centre, batch.strong, batch.weak
    similarity = batch.similarity
    has_strong = torch.ones_like(has_weak)
    weight = has_weak.to(h_centre.dtype)
    if similarity is not None:
        _, weak_col = member_columns(has_strong, has_weak)
        weight = positive_weight(similarity.detach().to(h_centre.dtype), weak_col)
        weight = torch.where(has_weak, weight.clamp(min=0) ** cfg.official_weight_power, 0.0)
    keys = h_centre if h_weak is None else torch.where(has_weak[:, None], h_weak, h_centre)
    loss, stats = official_rcl_loss(h_centre, h_strong, keys, weight, cfg.tau)
    shares = {"contributing": 1.0, "strong": 1.0, "weak": has_weak.float().mean(),
              "members": float(3 * h_centre.shape[0]), "both": has_weak.float().mean(),
              "weak_zero_weight": 0.0, "self_view": 0.0}  # members = encoded sequences
    return loss, {**shares, **stats}
