"""Sequence encoders: ``encoder(seqs (B, L)) -> states (B, L, D)``, owning the item table."""

from __future__ import annotations

from torch import nn

from rclrec.config import ConfigError, EncoderConfig
from rclrec.models.fmlp import FMLPRec
from rclrec.models.sasrec import SASRec

ENCODERS: dict[str, type[nn.Module]] = {
    "sasrec": SASRec,
    "fmlp": FMLPRec,
}


def build_encoder(cfg: EncoderConfig, num_items: int, extra_tokens: int = 0) -> nn.Module:
    """An encoder over items 1..num_items, with ``extra_tokens`` input-only ids after them."""
    if cfg.name not in ENCODERS:
        raise ConfigError(f"unknown encoder {cfg.name!r}; choose one of "
                         f"{', '.join(sorted(ENCODERS))} (option --encoder)")
    return ENCODERS[cfg.name](cfg, num_items, extra_tokens)
