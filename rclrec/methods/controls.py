"""Controls that say where RCL's gain comes from (issue 16): RCL's extra training, not its contrast.

With the SASRec encoder RCL trains each centre's positives with the recommendation loss too
(``rcl.rec_loss_on_positives``), so a step sees more sequences through the CE than SASRec's.
Two methods keep that extra CE work and drop the contrast; each draws, for every centre, exactly
as many extra SEQUENCES as RCL draws positives for it (its strong and weak samplers decide the
count: 0, 1 or 2):

- ``random_positives``: the extra sequences are drawn uniformly from all training sequences
  (other than the centre): "more sequences", not "which sequences".
- ``repeated_centres``: the extra sequences are the centre itself again (a new dropout mask
  each): SASRec given RCL's extra sequences per step, "more gradient per step".

Matched in sequences, not in CE positions: the sequence is the unit RCL draws and the
contrast acts on, and matching positions would mean cutting or padding the drawn sequences,
which changes what they are. Sequences of other lengths carry other numbers of target
positions, so the positions per step differ between RCL and the controls; each logs its own
per step (``extra_positions``, per centre) so the report can show the difference.

Both take RCL's settings that decide the draws (the ``rcl`` section: the similarity behind
the counts); the contrast's settings (``CONTRAST_SETTINGS``) are unread: refused as flags and
at their defaults in the resolved config (so not part of what tells two cells apart). A
control always trains its extra sequences with the rec. loss, so a configuration where RCL
would not (``rcl.rec_loss_on_positives`` false, or unset with prefix instances, e.g. FMLP-Rec)
is refused: there is no extra CE work to match.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from rclrec.config import ConfigError
from rclrec.data.dataset import DataError
from rclrec.losses.recommendation import recommendation_loss
from rclrec.methods.base import Batch
from rclrec.methods.rcl import RCL, RCLConfig

# The settings of the ``rcl`` section only the contrast reads.
CONTRAST_SETTINGS = ("weight", "tau", "score", "mask_same_target", "weight_floor",
                     "official_weight_power")


class UniformOtherSampler:
    """Draws, per centre, one unit uniformly from a pool, never the centre itself.

    Args:
        pool: the units drawn from (each once; order does not matter).
        rng: the generator of the draws.
    """

    def __init__(self, pool: np.ndarray, rng: np.random.Generator) -> None:
        self.pool = np.unique(np.asarray(pool, dtype=np.int64))
        if len(self.pool) < 2:
            raise DataError("random positives need at least 2 training sequences to draw from")
        self.rng = rng

    def sample(self, centres: np.ndarray) -> np.ndarray:
        """(B,) centre units -> (B,) units of the pool, each uniform over the pool minus the
        centre (over the whole pool for a centre outside it)."""
        centres = np.asarray(centres, dtype=np.int64)
        n = len(self.pool)
        pos = np.searchsorted(self.pool, centres)
        inside = (pos < n) & (self.pool[np.minimum(pos, n - 1)] == centres)
        # Draw among n - 1 slots and step over the centre's own slot.
        draw = self.rng.integers(0, n - inside.astype(np.int64))
        draw = draw + (inside & (draw >= pos))
        return self.pool[draw]


class RandomPositives(RCL):
    """RCL's count of extra sequences per centre, drawn at random, with the rec. loss only."""

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        return tuple(name for name in RCL.reads() if name not in CONTRAST_SETTINGS)

    @classmethod
    def resolve_settings(cls, settings: RCLConfig, cfg) -> RCLConfig:
        defaults = RCLConfig()
        settings = dataclasses.replace(settings, **{key: getattr(defaults, key)
                                                    for key in CONTRAST_SETTINGS})
        return super().resolve_settings(settings, cfg)

    def __init__(self, cfg, split, instances, device: torch.device,
                 item_ids: list[str] | None = None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        if not self.rec_on_positives:
            raise ConfigError(
                f"method {cfg.method} trains its extra sequences with the rec. loss, but RCL "
                f"with these settings would not (rcl.rec_loss_on_positives = "
                f"{self.rcl.rec_loss_on_positives}, "
                f"{'window' if self.every_position else 'prefix'}"
                f" instances): set rcl.rec_loss_on_positives = true or use RCL")
        # A generator of its own: RCL's draws (the counts) stay those of an RCL run.
        self.control_rng = np.random.default_rng(cfg.train.seed + 3)
        self.others = UniformOtherSampler(self.whole_unit[self.usable], self.control_rng)

    def extra_units(self, users: np.ndarray) -> np.ndarray:
        """The units trained with the recommendation loss beside the centres of ``users``."""
        strong, weak = self.sample(users)
        counts = (strong >= 0).astype(np.int64) + (weak >= 0)
        centres = np.repeat(self.whole_unit[users], counts)
        return self.others.sample(centres)

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        rows = np.flatnonzero(batch.whole)
        if len(rows) == 0:
            return None, {}
        units = self.extra_units(batch.users[rows])
        stats = {"extra_sequences": len(units) / len(rows), "extra_positions": 0.0}
        if len(units) == 0:
            return None, stats
        _, states, targets = self.encode(encoder, units, with_targets=True)
        stats["extra_positions"] = len(targets) / len(rows)  # CE target positions
        loss = recommendation_loss(self.rec_loss, states, targets, encoder.item_table)
        return loss, stats


class RepeatedCentres(RandomPositives):
    """SASRec with each centre trained again as many times as RCL draws positives for it."""

    def extra_units(self, users: np.ndarray) -> np.ndarray:
        strong, weak = self.sample(users)
        counts = (strong >= 0).astype(np.int64) + (weak >= 0)
        return np.repeat(self.whole_unit[users], counts)
