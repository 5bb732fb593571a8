"""RCL: the recommendation loss plus lambda times the relative contrastive loss (Eq. 18).

Per step, each centre (an instance that ends with its user's final training target) gets one
strong positive (another training sequence with the same target, Eq. 5) and one weak positive
(drawn from WP_u with probability proportional to similarity, Eq. 10). Positives are encoded
with the same encoder, with dropout, apart from the centres (length-sorted chunks, ``encode``).

Everything contrasted is a *unit*: the training items of a user before position ``end`` as
input, item ``end`` as target. Centres and weak positives are whole training sequences
(``end`` = the last training item); with ``rcl.strong_positives = prefixes`` a strong positive
may be any prefix of another user's sequence that is followed by the centre's target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rclrec.config import ConfigError, check_choice, check_finite
from rclrec.data.batches import (
    TrainingInstances,
    cost_balanced_chunks,
    length_sorted_chunks,
    prefix_arrays,
)
from rclrec.data.split import LeaveOneOutSplit, contrast_units
from rclrec.devices import to_device
from rclrec.losses.contrastive import (
    OFFICIAL_WEIGHT_POWER,
    VARIANTS,
    ContrastBatch,
    RCLLossConfig,
    fill_missing_strong,
    relative_contrastive_loss,
    stack_members,
)
from rclrec.losses.recommendation import recommendation_loss, select_target_positions
from rclrec.methods.base import Batch, Method
from rclrec.models.encode import chunk_windows
from rclrec.similarity.index import SimilarityIndex, index_for_config
from rclrec.similarity.measures import METRICS
from rclrec.similarity.positives import StrongSampler, WeakSampler, pair_similarity

# The fixed cost of one more encoder call (forward and backward) on a CPU, in padded positions
# of the same work: what ``cost_balanced_chunks`` weighs a cut against (measured with
# benchmarks/profile_rcl_step.py, docs/RESULTS.md "RCL's step").
CPU_CALL_COST = 256
GPU_CHUNK = 128  # rows per chunk of positives on other devices (the layout before the plan)


@dataclass(frozen=True)
class RCLConfig:
    """RCL's settings (docs/METHOD.md sections 3-5); the paper's search ranges are in section 4."""

    variant: str = "rcl"  # (str) rcl | unweight | weak | strong | three_pairs | official
    similarity: str = "ngram"  # (str) jaccard | tfidf | ngram | levenshtein | semantic
    ngram: int = 2  # (int) n of the n-gram metric; the paper's main setting is 2-grams
    alpha: float = 0.05  # (float) weak positives = top alpha fraction of sequences (paper grid)
    selection: str = "row"  # (str) row (paper text) | global (official code) top-alpha
    max_neighbours: int = 256  # (int) cap on weak candidates per sequence (ours: memory)
    weight: float = 0.1  # (float) lambda of Eq. 18 (the paper's grid 0.1 ... 0.5)
    # Defaults picked on validation NDCG@10 (docs/RESULTS.md, "How the default similarity
    # score was chosen"): raw dot products at tau 1 (the paper's reading) let the contrast
    # swamp the recommendation loss early on.
    tau: float = 0.5  # (float) temperature of Eq. 12 and 16
    score: str = "cosine"  # (str) cosine | dot (paper)
    mask_same_target: bool = False  # (bool) mask in-batch same-target false negatives (ours)
    weight_floor: float = 0.0  # (float) eps added to similarities in Eq. 16 (0 = paper)
    semantic_every: int = 5  # (int) epochs between rebuilds of the semantic index (ours)
    # None: on with window instances (SASRec), off with prefix instances (FMLP-Rec), each
    # picked on validation NDCG@10 (docs/RESULTS.md, "Recommendation loss on the positives").
    # The lambda-0 controls do as well: the gain or loss is the training on the positives.
    rec_loss_on_positives: bool | None = None  # (bool) positives also get the rec. loss
    # sequences: other users' whole training sequences with the centre's target (the paper);
    # prefixes: also any prefix of another user's sequence followed by that target (docs/METHOD.md
    # section 5): far more centres get a strong positive (docs/RESULTS.md, "Strong positives
    # from prefixes").
    strong_positives: str = "sequences"  # (str) sequences | prefixes
    # variant = official only: weight_i = s(u_i, b_i) ** power, the official code's smooth_loss.
    official_weight_power: float = OFFICIAL_WEIGHT_POWER  # (float)

    def positives_get_rec_loss(self, instances: str) -> bool:
        """rec_loss_on_positives, with None resolved by the kind of training instances."""
        if self.rec_loss_on_positives is None:
            return instances == "windows"
        return self.rec_loss_on_positives

    def loss_config(self) -> RCLLossConfig:
        """The settings of the loss function (its ``similarity`` is our ``score``)."""
        return RCLLossConfig(variant=self.variant, tau=self.tau,
                             mask_same_target=self.mask_same_target, similarity=self.score,
                             weight_floor=self.weight_floor,
                             official_weight_power=self.official_weight_power)

    def __post_init__(self) -> None:
        check_finite(self, "rcl")
        check_choice("rcl.variant", self.variant, VARIANTS)
        check_choice("rcl.similarity", self.similarity, METRICS)
        check_choice("rcl.selection", self.selection, ("row", "global"))
        check_choice("rcl.score", self.score, ("cosine", "dot"))
        check_choice("rcl.strong_positives", self.strong_positives, ("sequences", "prefixes"))
        if self.variant == "official" and (self.score != "dot" or self.mask_same_target
                                           or self.weight_floor):
            raise ConfigError("rcl.variant=official (the authors' loss) needs rcl.score=dot, "
                              "rcl.mask_same_target=false and rcl.weight_floor=0")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"rcl.alpha must be in (0, 1], got {self.alpha}")
        if self.tau <= 0:
            raise ConfigError(f"rcl.tau must be > 0, got {self.tau}")
        for key in ("ngram", "max_neighbours", "semantic_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"rcl.{key} must be >= 1")


# The settings that choose and weight weak positives: the "strong" variant (Eq. 12 alone) reads
# none of them, so its resolved config holds their defaults (one cell for every similarity).
WEAK_POSITIVE_SETTINGS = ("similarity", "ngram", "alpha", "selection", "max_neighbours",
                          "semantic_every", "weight_floor")


class RCL(Method):
    """Relative Contrastive Learning (Wang et al., CIKM 2024)."""

    Config = RCLConfig
    section = "rcl"

    @classmethod
    def resolve_settings(cls, settings: RCLConfig, cfg) -> RCLConfig:
        """The positives' rec. loss by the kind of instances; the strong variant's unread
        weak-positive settings at their defaults."""
        if cfg.train.instances != "auto":
            settings = dataclasses.replace(settings, rec_loss_on_positives=settings
                                           .positives_get_rec_loss(cfg.train.instances))
        if settings.variant == "strong":
            defaults = RCLConfig()
            settings = dataclasses.replace(settings, **{key: getattr(defaults, key)
                                                        for key in WEAK_POSITIVE_SETTINGS})
        return settings

    def __init__(self, cfg, split: LeaveOneOutSplit, instances: TrainingInstances,
                 device: torch.device, item_ids: list[str] | None = None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        self.rcl: RCLConfig = self.settings
        self.loss_cfg = self.rcl.loss_config()
        self.inputs, self.targets = contrast_units(split.train)
        self.unit_user, self.unit_end, self.whole_unit = contrast_unit_table(
            split.train, every_prefix=self.rcl.strong_positives == "prefixes")
        self.unit_target = np.array([split.train[u][e] for u, e in
                                     zip(self.unit_user, self.unit_end, strict=True)],
                                    dtype=np.int64)
        self.unit_is_whole = self.whole_unit[self.unit_user] == np.arange(len(self.unit_user))
        # Users with at least one input item (a unit of their whole sequence that has one).
        self.usable = (self.whole_unit >= 0) & (self.unit_end[np.maximum(self.whole_unit, 0)] >= 1)
        # Positives get the rec. loss at every position (window instances) or at the last one
        # (prefix instances), as the centres do.
        self.every_position = instances.targets.shape[1] > 1
        self.rec_on_positives = self.rcl.positives_get_rec_loss(
            "windows" if self.every_position else "prefixes")
        self.max_len = instances.inputs.shape[1]
        self.rng = np.random.default_rng(cfg.train.seed + 1)
        self.index: SimilarityIndex | None = None
        # Representations the semantic index was last built from: saved in checkpoints, so a
        # resumed run uses the index of its last rebuild, not one from the resumed weights.
        self.semantic_representations: np.ndarray | None = None
        self.coverage: dict[str, float] = {}

    # ---------------------------------------------------------------- positives
    def setup(self, encoder: nn.Module) -> None:
        self.strong = StrongSampler(self.unit_target, rng=self.rng)
        if self.loss_cfg.variant == "strong":  # no weak positives: no index to build
            self.coverage = {"share_with_strong": self.share_with_strong(), "share_with_weak": 0.0}
            tqdm.write(f"RCL positives (strong variant: no weak ones): "
                       f"{self.coverage['share_with_strong']:.1%} of sequences have a strong one")
            return
        if self.rcl.similarity == "semantic":
            if self.semantic_representations is None:
                self.rebuild_semantic(encoder)
            else:  # resumed
                self.set_semantic_index(self.semantic_representations)
        else:
            self.set_index(index_for_config(self.inputs, self.targets, self.rcl,
                                            show_progress=True))
        self.coverage = {
            "share_with_strong": self.share_with_strong(),
            "share_with_weak": float(((self.index.degrees() > 0) & self.usable).mean()),
        }
        tqdm.write(f"RCL positives ({self.rcl.similarity}, alpha {self.rcl.alpha}): "
                   f"{self.coverage['share_with_strong']:.1%} of sequences have a strong "
                   f"positive, {self.coverage['share_with_weak']:.1%} a weak one")

    def share_with_strong(self) -> float:
        return float(((self.strong.counts()[self.whole_unit] > 0) & self.usable).mean())

    def set_index(self, index: SimilarityIndex) -> None:
        self.index = index
        self.weak = WeakSampler(index, rng=self.rng)

    @torch.no_grad()
    def rebuild_semantic(self, encoder: nn.Module) -> None:
        """Semantic similarity (Eq. 9) from the current encoder's representations."""
        reps = np.zeros((len(self.inputs), encoder.item_table.shape[1]), np.float32)
        rows = np.flatnonzero(self.usable)
        was_training = encoder.training
        encoder.eval()
        for start in range(0, len(rows), 1024):
            users = rows[start:start + 1024]
            reps[users] = self.encode(encoder, self.whole_unit[users]).float().cpu().numpy()
        encoder.train(was_training)
        self.set_semantic_index(reps)

    def set_semantic_index(self, reps: np.ndarray) -> None:
        self.semantic_representations = reps
        self.set_index(index_for_config(self.inputs, self.targets, self.rcl,
                                        representations=reps))

    def checkpoint_state(self) -> dict:
        if self.semantic_representations is None:
            return {}
        return {"semantic_representations": torch.from_numpy(self.semantic_representations)}

    def load_checkpoint_state(self, state: dict) -> None:
        reps = state.get("semantic_representations")
        self.semantic_representations = None if reps is None else reps.numpy()

    def on_epoch_start(self, epoch: int, encoder: nn.Module) -> None:
        every = self.rcl.semantic_every
        if (self.index is not None and self.rcl.similarity == "semantic" and epoch > 1
                and (epoch - 1) % every == 0):
            self.rebuild_semantic(encoder)

    def encode(self, encoder: nn.Module, units: np.ndarray, with_targets: bool = False,
               chunk: int | None = None):
        """Last-position states (U, D) of the given units.

        Positives are random units of any length, so they are encoded in length-sorted chunks,
        each trimmed to its longest sequence (``chunk_windows``), instead of one batch padded
        to the longest: chunks of ``chunk`` rows if given, else the cuts of ``chunk_plan``.
        With ``with_targets`` also returns the states and targets of every position that has a
        target (for the recommendation loss on positives).
        """
        inputs, targets = prefix_arrays(self.split.train, self.unit_user[units],
                                        self.unit_end[units], self.max_len, self.every_position)
        rows, last, states, kept = [], [], [], []
        plan = self.chunk_plan if chunk is None else chunk
        for part, x in chunk_windows(inputs, plan, self.device):
            rows.append(part)
            if not with_targets:
                last.append(encoder.last_state(x))
                continue
            hidden = encoder(x)
            last.append(hidden[:, -1])
            y = targets[part]
            if self.every_position:  # trimmed as the inputs are
                y = y[:, y.shape[1] - x.shape[1]:]
            s, t = select_target_positions(hidden, y)  # y on the host: no device wait
            states.append(s)
            kept.append(t)
        if not rows:
            empty = encoder.item_table.new_zeros((0, encoder.item_table.shape[1]))
            no_targets = torch.zeros(0, dtype=torch.long, device=self.device)
            return (empty, empty, no_targets) if with_targets else empty
        # One gather back to the units' order (a select per unit costs a zero-filled (chunk, L,
        # D) gradient each in the backward pass).
        order = to_device(np.argsort(np.concatenate(rows)), self.device)
        if not with_targets:
            return torch.cat(last)[order]
        return torch.cat(last)[order], torch.cat(states), torch.cat(kept)

    def chunk_plan(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Chunks of the positives' rows: on a CPU cut where the padding saved outweighs one
        more encoder call (``cost_balanced_chunks``); elsewhere (a GPU, where a call costs
        far more than positions do, not measured yet) fixed chunks of ``GPU_CHUNK`` rows."""
        if self.device.type == "cpu":
            return cost_balanced_chunks(lengths, CPU_CALL_COST)
        return length_sorted_chunks(lengths, GPU_CHUNK)

    def sample(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Units of one strong and one weak positive per centre user, -1 where there is none."""
        variant = self.loss_cfg.variant
        none = np.full(len(users), -1, dtype=np.int64)
        centres = self.whole_unit[users]
        strong = none if variant == "weak" else self.strong.sample(centres)
        # A prefix of the centre's own sequence is not "another" sequence: draw again (prefix
        # units only; whole-sequence units never belong to the centre's user).
        for _ in range(4):
            own = (strong >= 0) & (self.unit_user[np.maximum(strong, 0)] == users)
            if not own.any():
                break
            strong[own] = self.strong.sample(centres[own])
        strong[(strong >= 0) & (self.unit_user[np.maximum(strong, 0)] == users)] = -1
        weak = none if variant == "strong" else self.weak.sample(users)
        weak = np.where(weak >= 0, self.whole_unit[np.maximum(weak, 0)], -1)
        # A unit with no input item has no representation to contrast.
        strong = np.where((strong >= 0) & (self.unit_end[np.maximum(strong, 0)] >= 1), strong, -1)
        weak = np.where((weak >= 0) & (self.unit_end[np.maximum(weak, 0)] >= 1), weak, -1)
        return strong, weak

    # ---------------------------------------------------------------- the loss
    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        rows = np.flatnonzero(batch.whole)
        if len(rows) == 0:
            return None, {}
        users = batch.users[rows]
        h_centre = hidden[to_device(rows, self.device), -1]  # (B, D)
        strong, weak = self.sample(users)
        has_s, has_w = strong >= 0, weak >= 0
        # Strong and official use a dropout view of the centre where SP_u is empty.
        needs_view = self.loss_cfg.variant in ("strong", "official")
        view_units = self.whole_unit[users[~has_s] if needs_view else users[:0]]

        # One extra set of passes encodes every positive (and the Strong ablation's dropout views).
        to_encode = np.concatenate([strong[has_s], weak[has_w], view_units])
        extra_rec = None
        # What the rec. loss sees beside the centres, per centre (the controls match the first).
        extra = {"extra_sequences": 0.0, "extra_positions": 0.0} if self.rec_on_positives else {}
        if len(to_encode):
            if self.rec_on_positives:
                encoded, pos_states, pos_targets = self.encode(encoder, to_encode,
                                                               with_targets=True)
                extra_rec = recommendation_loss(self.rec_loss, pos_states, pos_targets,
                                                encoder.item_table)
                extra = {"extra_sequences": len(to_encode) / len(rows),
                         "extra_positions": len(pos_targets) / len(rows)}
            else:
                encoded = self.encode(encoder, to_encode)
        else:
            encoded = h_centre.new_zeros((0, h_centre.shape[1]))
        n_s, n_w = int(has_s.sum()), int(has_w.sum())
        # The positives go to their centres' rows by indices found on the host, and the loss
        # gets the masks on the host (a boolean mask on the device would make a GPU wait for
        # its count).
        encoded = encoded.to(h_centre.dtype)

        def rows_of(present: np.ndarray) -> torch.Tensor:
            return to_device(np.flatnonzero(present), self.device)

        h_strong = h_centre.new_zeros(h_centre.shape).index_copy(0, rows_of(has_s), encoded[:n_s])
        h_weak = h_centre.new_zeros(h_centre.shape).index_copy(0, rows_of(has_w),
                                                               encoded[n_s:n_s + n_w])
        strong_units, strong_present = strong.copy(), has_s
        is_view = None
        if needs_view and len(view_units):
            h_strong, _, is_view = fill_missing_strong(
                h_strong, to_device(has_s, self.device),
                h_strong.index_copy(0, rows_of(~has_s), encoded[n_s + n_w:]))
            strong_units[~has_s] = view_units
            strong_present = np.ones_like(has_s)

        member_units = stack_members(torch.from_numpy(self.whole_unit[users]),
                                     torch.from_numpy(strong_units),
                                     torch.from_numpy(strong_present), torch.from_numpy(weak),
                                     torch.from_numpy(has_w)).numpy()
        similarity = None
        if self.loss_cfg.variant in ("rcl", "weak", "official"):
            # The index holds whole sequences; a strong prefix is not in it (weight 0).
            member_users = np.where(self.unit_is_whole[member_units],
                                    self.unit_user[member_units], -1)
            weights = pair_similarity(self.index, users, member_users, symmetric=True)
            # Checked here, on the host: the loss checks its weights only on the CPU (on a GPU
            # its check would wait for the device).
            if not (np.isfinite(weights).all() and (weights >= 0).all()):
                raise ValueError("the similarity index gave weights that are negative or not "
                                 "finite (SimilarityIndex.load checks a cached index)")
            similarity = to_device(weights, self.device)
        loss, stats = relative_contrastive_loss(ContrastBatch(
            h_centre, h_strong, torch.from_numpy(strong_present), h_weak, torch.from_numpy(has_w),
            similarity, centre_targets=to_device(self.targets[users], self.device),
            member_targets=to_device(self.unit_target[member_units], self.device),
            strong_is_view=is_view), self.loss_cfg)
        total = self.rcl.weight * loss
        if extra_rec is not None:
            total = total + extra_rec
        # Logged per epoch: l_weak near 0 with boundary_active near 1 means the weak positives
        # get no gradient (the weighted denominator of Eq. 16 holds almost nothing).
        logged = ("boundary_active", "both", "l_strong", "l_weak")
        return total, {"rcl": loss.detach(), **extra,
                       **{f"rcl_{k}": v for k, v in stats.items() if k in logged}}


def contrast_unit_table(train: list[np.ndarray], every_prefix: bool
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The units of contrast: (user, end) of each, and the unit of each user's whole sequence.

    Without ``every_prefix`` unit u is user u's whole training sequence (end = its last item,
    0 for a one-item sequence, which has no input). With it, every (user, end >= 1).

    Returns:
        unit_user (U,), unit_end (U,), whole_unit (N,) (-1 for a user without a unit).
    """
    lengths = np.array([len(s) for s in train], dtype=np.int64)
    if not every_prefix:
        n = len(train)
        return np.arange(n), np.maximum(lengths - 1, 0), np.arange(n)
    counts = np.maximum(lengths - 1, 0)
    unit_user = np.repeat(np.arange(len(train)), counts)
    unit_end = np.concatenate([np.arange(1, n, dtype=np.int64) for n in lengths] or
                              [np.zeros(0, np.int64)])
    whole_unit = np.where(counts > 0, np.cumsum(counts) - 1, -1)
    return unit_user, unit_end, whole_unit
