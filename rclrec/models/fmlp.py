"""FMLP-Rec: filter-enhanced MLP for sequential recommendation (Zhou et al., WWW 2022).

Each block mixes positions with a learnable filter in the frequency domain (rFFT along the
sequence axis, element-wise complex product, inverse rFFT), then applies a point-wise
feed-forward; both with residual + post-LayerNorm, as in the official code (RUCAIBox/FMLP-Rec;
docs/BASELINES.md section 8).

One deliberate difference: the official code has no padding mask, so the position embeddings
of the padding slots (and, after the first block, whatever the filter wrote there) leak into the
real positions. Here padding slots are set to zero before every filter (``mask_padding=True``),
so the states of real positions depend only on the real items and their positions. Pass
``mask_padding=False`` for the official behaviour.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import EncoderConfig
from rclrec.data.dataset import PAD
from rclrec.models.layers import (
    Dropout,
    FeedForward,
    SequenceEmbedding,
    SequenceEncoder,
    init_weights,
)


class FilterLayer(nn.Module):
    """X = LayerNorm(X + Dropout(irFFT(rFFT(X) * W))), W a learnable complex filter."""

    def __init__(self, max_len: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        # (1, max_len//2 + 1, D, 2): real and imaginary parts, one filter per block (official
        # layout and init, N(0, 1) * 0.02; init_weights leaves plain Parameters alone).
        self.complex_weight = nn.Parameter(torch.randn(1, max_len // 2 + 1, hidden_dim, 2) * 0.02)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, max_len, D) -> (B, max_len, D)."""
        return self.norm(x + self.dropout(self.mix(x)))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """The filter alone, linear in x: (B, max_len, D) -> (B, max_len, D)."""
        # FFTs of half-precision tensors need power-of-two lengths: work in float32 at least.
        dtype = torch.promote_types(x.dtype, torch.float32)
        spectrum = torch.fft.rfft(x.to(dtype), dim=1, norm="ortho")  # (B, max_len//2+1, D)
        weight = torch.view_as_complex(self.complex_weight.to(dtype))  # (1, max_len//2+1, D)
        mixed = torch.fft.irfft(spectrum * weight, n=self.max_len, dim=1, norm="ortho")
        return mixed.to(x.dtype)


class FMLPBlock(nn.Module):
    """Filter layer, then point-wise feed-forward with residual + LayerNorm."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.filter = FilterLayer(cfg.max_len, cfg.hidden_dim, cfg.dropout)
        self.feed_forward = FeedForward(cfg.hidden_dim, cfg.inner_dim, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden_dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, max_len, D) -> (B, max_len, D)."""
        x = self.filter(x)
        return self.norm(x + self.feed_forward(x))


class FMLPRec(SequenceEncoder):
    """FMLP-Rec encoder: sequences of item ids -> one state per position.

    The filter is a circular convolution over the whole window, so the encoder is not causal:
    every position sees every other one. Only the last position of a left-padded sequence is a
    valid representation of it (``causal = False`` tells the trainer not to use every position
    as a training target).

    Args:
        cfg: encoder settings (hidden_dim, num_blocks, inner_dim, dropout, max_len are used).
        num_items: largest item id; the item table has num_items + 1 rows, row 0 = padding.
        extra_tokens: input-only rows after the items (a [mask] token), never scored.
        mask_padding: zero the padding slots before every filter (see module docstring).
    """

    causal = False

    def __init__(self, cfg: EncoderConfig, num_items: int, extra_tokens: int = 0, *,
                 mask_padding: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.max_len = cfg.max_len
        self.mask_padding = mask_padding
        self.embed = SequenceEmbedding(num_items, cfg.hidden_dim, cfg.max_len, cfg.dropout,
                                       extra_tokens)
        self.blocks = nn.ModuleList(FMLPBlock(cfg) for _ in range(cfg.num_blocks))
        self.apply(init_weights)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Encode left-padded sequences.

        Args:
            seqs: (B, L) item ids, 0 = padding on the left, L <= max_len. Shorter inputs are
                padded on the left to max_len internally (the filter is defined on max_len
                slots), and the last L positions are returned.

        Returns:
            (B, L, D) states; position L - 1 is the sequence representation. Padding slots are
            zero when ``mask_padding`` is on.

        Raises:
            ValueError: L > max_len.
        """
        length = seqs.shape[1]
        if length > self.max_len:
            raise ValueError(f"input length {length} exceeds max_len {self.max_len}")
        if length < self.max_len:
            seqs = F.pad(seqs, (self.max_len - length, 0), value=PAD)
        real = (seqs != PAD).unsqueeze(-1)  # (B, max_len, 1)
        x = self.embed(seqs)  # (B, max_len, D)
        for block in self.blocks:
            if self.mask_padding:
                x = x * real
            x = block(x)
        if self.mask_padding:
            x = x * real
        return x[:, self.max_len - length:]
