"""Building blocks shared by the encoders."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) for linear and embedding weights, LayerNorm at (1, 0) (RecBole, BERT)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the same mask, drawn faster on the CPU.

    PyTorch's CPU dropout keeps an element when a float64 uniform draw (one per element, in
    order) is below 1 - p, drawn one element at a time through ``bernoulli_``; drawing the same
    uniforms with ``uniform_`` and comparing gives the identical mask, output and generator
    state at a fraction of the cost (tests compare the two). Elsewhere (a GPU draws its masks
    differently) and outside training this is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        keep = 1 - self.p
        # empty_like keeps x's strides, as F.dropout's noise does: draws land in memory order
        uniform = torch.empty_like(x, dtype=torch.float64).uniform_()
        return x * uniform.lt_(keep).to(x.dtype).div_(keep)  # F.dropout's own noise tensor


class Linear(nn.Linear):
    """``nn.Linear`` computed as a product and then an in-place bias add on the CPU.

    ``F.linear`` calls addmm, which first copies the bias into every row of the fresh output
    and then adds the product to it; adding the bias after the product gives the same values
    (one rounding of product + bias either way; tests compare the encoders' shapes) for less
    memory traffic. Under autocast (bf16) addmm rounds the bias first: that path is kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.bias is None or x.device.type != "cpu"
                or torch.is_autocast_enabled(x.device.type)):
            return super().forward(x)
        return torch.matmul(x, self.weight.t()).add_(self.bias)


class FeedForward(nn.Module):
    """Point-wise feed-forward: d -> inner -> d with GELU."""

    def __init__(self, hidden_dim: int, inner_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = Linear(hidden_dim, inner_dim)
        self.fc2 = Linear(inner_dim, hidden_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(x))))


class SequenceEmbedding(nn.Module):
    """Item embedding plus a learned position embedding, LayerNorm and dropout.

    Positions are the slots of the left-padded window, so the most recent item always sits at
    position max_len - 1. Item 0 is padding; its row is kept at zero. ``extra_tokens`` rows
    after the items are input-only tokens (a [mask] token at id num_items + 1), never scored.
    """

    def __init__(self, num_items: int, hidden_dim: int, max_len: int, dropout: float,
                 extra_tokens: int = 0) -> None:
        super().__init__()
        self.max_len = max_len
        self.item_embedding = nn.Embedding(num_items + 1 + extra_tokens, hidden_dim,
                                           padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.dropout = Dropout(dropout)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, L) item ids, L <= max_len -> (B, L, D)."""
        length = seqs.shape[1]
        if length > self.max_len:
            raise ValueError(f"input length {length} exceeds max_len {self.max_len}")
        # the last ``length`` rows: the same values as looking up their positions, with a
        # slice's backward instead of an embedding's
        positions = self.position_embedding.weight[self.max_len - length:]
        x = self.item_embedding(seqs) + positions
        return self.dropout(self.norm(x))


class SequenceEncoder(nn.Module):
    """Base of the encoders: ``self.embed`` owns the item table that also scores items."""

    embed: SequenceEmbedding
    num_items: int

    @property
    def item_embedding(self) -> nn.Embedding:
        """The input table: padding, the items, then any input-only tokens ([mask])."""
        return self.embed.item_embedding

    @property
    def item_table(self) -> torch.Tensor:
        """(num_items + 1, D) rows of padding and the items: what scores and losses use."""
        weight = self.embed.item_embedding.weight
        # A slice, even of every row, makes autograd zero-fill and copy a table-sized gradient
        # each step: only slice when input-only tokens follow the items.
        return weight if weight.shape[0] == self.num_items + 1 else weight[: self.num_items + 1]

    def last_state(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, D) state of each sequence's last position: what ranking and serving score with.
        An encoder that can skip the other positions' work overrides this."""
        return self(seqs)[:, -1]
