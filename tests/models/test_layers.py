"""Layers computed differently from their torch counterparts give the same bits."""

import pytest
import torch
from torch import nn

from rclrec.models.layers import Linear, SequenceEmbedding


@pytest.mark.parametrize("shape", [(7, 3, 64, 192), (256, 6, 64, 256), (256, 5, 256, 64)])
def test_linear_gives_nn_linears_output_and_gradients_bit_for_bit(shape):
    rows, length, d_in, d_out = shape
    torch.manual_seed(0)
    ours = Linear(d_in, d_out)
    nn.init.normal_(ours.bias)
    reference = nn.Linear(d_in, d_out)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(rows, length, d_in)
    upstream = torch.randn(rows, length, d_out)
    results = []
    for layer in (reference, ours):
        xg = x.clone().requires_grad_()
        y = layer(xg)
        y.backward(upstream)
        results.append((y, xg.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_sequence_embedding_is_the_item_and_position_lookups_bit_for_bit():
    torch.manual_seed(0)
    embed = SequenceEmbedding(num_items=20, hidden_dim=8, max_len=6, dropout=0.0)
    seqs = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    upstream = torch.randn(2, 4, 8)
    embed(seqs).backward(upstream)
    ours = [p.grad.clone() for p in embed.parameters()]
    embed.zero_grad()
    positions = torch.arange(2, 6)
    x = embed.item_embedding(seqs) + embed.position_embedding(positions)
    reference = embed.dropout(embed.norm(x))
    reference.backward(upstream)
    assert torch.equal(embed(seqs), reference)
    assert all(torch.equal(a, p.grad) for a, p in zip(ours, embed.parameters(), strict=True))
    assert ours[1][:2].abs().sum() == 0 and ours[1][2:].abs().sum() > 0  # unused slots get 0


def test_linear_under_bf16_autocast_is_nn_linear():
    torch.manual_seed(0)
    ours = Linear(64, 32)
    nn.init.normal_(ours.bias)
    reference = nn.Linear(64, 32)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(5, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_ref = ours(x), reference(x)
    assert y.dtype == torch.bfloat16 and torch.equal(y, y_ref)
