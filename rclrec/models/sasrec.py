"""SASRec: causal self-attention over the item sequence (Kang & McAuley, ICDM 2018).

The blocks follow the RecBole SASRec that DuoRec, CL4SRec and MCLRec build on (post-LN, GELU,
hidden and attention dropout); ``norm_first`` switches to the pre-LN blocks of the original.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import EncoderConfig
from rclrec.data.dataset import PAD
from rclrec.models.layers import (
    Dropout,
    FeedForward,
    Linear,
    SequenceEmbedding,
    SequenceEncoder,
    init_weights,
)


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_dim: int, num_heads: int, attn_dropout: float, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(hidden_dim, 3 * hidden_dim)
        self.out = Linear(hidden_dim, hidden_dim)
        self.attn_dropout = attn_dropout
        self.probability_dropout = Dropout(attn_dropout)  # the CPU training path's (see below)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: int | None = None
                ) -> torch.Tensor:
        """x (B, L, D), mask (B, 1, Q, L) bool, True = may attend -> (B, Q, D).

        ``queries``: only the last Q positions ask (all L by default); keys are every position.
        """
        b, length, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q[:, length - (queries or length):]
        # (B, L, D) -> (B, H, L, D/H)
        q, k, v = (t.view(b, t.shape[1], self.num_heads, d // self.num_heads).transpose(1, 2)
                   for t in (q, k, v))
        if self.training and self.attn_dropout > 0 and x.device.type == "cpu" and q.dtype in (
                torch.float32, torch.float64):
            y = math_attention(q, k, v, mask, self.probability_dropout)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, q.shape[2], d)
        return self.dropout(self.out(y))


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                   dropout: nn.Module) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with dropout, as its math path (the only one a CPU
    has for dropout) computes it, step for step, but with the probabilities' dropout drawn by
    ``dropout`` (``Dropout`` draws nn.Dropout's mask faster than the ``bernoulli_`` inside).

    Identical to SDPA for float32 and float64 as long as no query row is fully masked (the
    encoder's mask always lets a query see itself): SDPA's "safe" softmax then changes nothing.
    """
    scale = math.sqrt(1.0 / math.sqrt(q.shape[-1]))  # SDPA scales q and k by its square root
    scores = torch.matmul(q * scale, k.transpose(-2, -1) * scale)
    scores.add_(torch.where(mask.logical_not(), float("-inf"), 0.0))
    return torch.matmul(dropout(torch.softmax(scores, dim=-1)), v)


class SASRecBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attention = CausalSelfAttention(cfg.hidden_dim, cfg.num_heads, cfg.attn_dropout,
                                             cfg.dropout)
        self.feed_forward = FeedForward(cfg.hidden_dim, cfg.inner_dim, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.hidden_dim, eps=1e-12)
        self.norm2 = nn.LayerNorm(cfg.hidden_dim, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: int | None = None
                ) -> torch.Tensor:
        """(B, L, D) -> (B, Q, D): the states of the last ``queries`` positions (all by default)."""
        rows = x[:, x.shape[1] - (queries or x.shape[1]):]
        if self.norm_first:
            x = rows + self.attention(self.norm1(x), mask, queries)
            return x + self.feed_forward(self.norm2(x))
        x = self.norm1(rows + self.attention(x, mask, queries))
        return self.norm2(x + self.feed_forward(x))


class SASRec(SequenceEncoder):
    """Causal Transformer encoder: every position sees itself and the real items before it."""

    causal = True

    def __init__(self, cfg: EncoderConfig, num_items: int, extra_tokens: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.embed = SequenceEmbedding(num_items, cfg.hidden_dim, cfg.max_len, cfg.dropout,
                                       extra_tokens)
        self.blocks = nn.ModuleList(SASRecBlock(cfg) for _ in range(cfg.num_blocks))
        self.final_norm = nn.LayerNorm(cfg.hidden_dim, eps=1e-12) if cfg.norm_first else None
        self.apply(init_weights)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Encode left-padded sequences.

        Args:
            seqs: (B, L) item ids, 0 = padding on the left.

        Returns:
            (B, L, D) states; position t summarises items up to t.
        """
        return self._encode(seqs, last_only=False)

    def last_state(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, D) state of the last position, equal to ``forward(seqs)[:, -1]``: the last block
        asks only from that position (its keys and values still span the sequence)."""
        return self._encode(seqs, last_only=True)[:, -1]

    def _encode(self, seqs: torch.Tensor, last_only: bool) -> torch.Tensor:
        length = seqs.shape[1]
        real = seqs != PAD  # (B, L)
        causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
        # A query attends to real keys at or before it, and always to itself, so padding rows
        # never see an all-masked row (which would give NaN).
        eye = torch.eye(length, dtype=torch.bool, device=seqs.device)
        mask = ((causal & real[:, None, :]) | eye)[:, None]  # (B, 1, L, L)
        x = self.embed(seqs)
        for i, block in enumerate(self.blocks):
            if last_only and i == len(self.blocks) - 1:
                x = block(x, mask[:, :, -1:], queries=1)
            else:
                x = block(x, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x
