"""FMLP-Rec encoder: shapes, padding, the filter, gradients, determinism."""

from __future__ import annotations

import pytest
import torch

from rclrec.config import EncoderConfig
from rclrec.models.fmlp import FilterLayer, FMLPRec

NUM_ITEMS = 20


def _model(max_len=8, dropout=0.2, **kw) -> FMLPRec:
    torch.manual_seed(0)
    cfg = EncoderConfig(name="fmlp", hidden_dim=16, num_blocks=2, inner_dim=32, dropout=dropout,
                        max_len=max_len)
    return FMLPRec(cfg, NUM_ITEMS, **kw)


def _seqs() -> torch.Tensor:
    return torch.tensor([[0, 0, 0, 3, 5, 7, 2, 9],
                         [0, 0, 0, 0, 0, 0, 0, 4],
                         [1, 2, 3, 4, 5, 6, 7, 8]])


def test_output_shape_and_interface():
    model = _model().eval()
    out = model(_seqs())
    assert out.shape == (3, 8, 16)
    assert FMLPRec.causal is False
    assert model.item_embedding.weight.shape == (NUM_ITEMS + 1, 16)
    assert model.item_embedding.padding_idx == 0
    # padding slots are zero
    assert torch.all(out[1, :7] == 0)


def test_short_input_is_left_padded_to_max_len():
    model = _model().eval()
    seqs = _seqs()
    short = seqs[:2, 3:]  # (2, 5): the same sequences without three padding slots
    torch.testing.assert_close(model(short), model(seqs[:2])[:, 3:])
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 9, dtype=torch.long))


def test_padding_slots_do_not_reach_real_positions():
    # Changing what a padding slot would hold (the padding row of the table and the position
    # embeddings of the padding slots) leaves the real positions unchanged.
    model = _model().eval()
    seqs = _seqs()
    before = model(seqs)
    with torch.no_grad():
        model.item_embedding.weight[0].normal_()
        model.embed.position_embedding.weight[:3].normal_()
    after = model(seqs)
    real = seqs != 0
    real[2] = False  # row 2 has no padding: its real slots 0..2 changed position embeddings
    torch.testing.assert_close(after[real], before[real])
    assert not torch.allclose(after[2], before[2])


def test_without_mask_padding_leaks_as_in_official_code():
    model = _model(mask_padding=False).eval()
    seqs = _seqs()[:1]
    before = model(seqs)[0, -1]
    with torch.no_grad():
        model.embed.position_embedding.weight[0].normal_()
    assert not torch.allclose(model(seqs)[0, -1], before)


def test_filter_identity_weight_returns_the_input():
    # W = 1 + 0j: irFFT(rFFT(x)) = x with norm="ortho", so the layer is LayerNorm(2x).
    layer = FilterLayer(max_len=6, hidden_dim=4, dropout=0.0)
    with torch.no_grad():
        layer.complex_weight.zero_()
        layer.complex_weight[..., 0] = 1.0
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(layer(x), layer.norm(2 * x))


def test_filter_is_a_circular_convolution_over_positions():
    # Shifting the input circularly along the sequence axis shifts the output the same way.
    layer = FilterLayer(max_len=8, hidden_dim=4, dropout=0.0)
    x = torch.randn(1, 8, 4)
    torch.testing.assert_close(layer(torch.roll(x, 3, dims=1)), torch.roll(layer(x), 3, dims=1))


def test_gradients_reach_every_filter():
    model = _model().train()
    out = model(_seqs())
    out[:, -1].pow(2).sum().backward()
    for block in model.blocks:
        grad = block.filter.complex_weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert model.item_embedding.weight.grad[0].abs().sum() == 0  # padding row stays fixed


def test_eval_is_deterministic_and_train_uses_dropout():
    model = _model()
    seqs = _seqs()
    model.eval()
    torch.testing.assert_close(model(seqs), model(seqs), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(seqs), model(seqs))


def test_init():
    model = _model()
    for block in model.blocks:
        assert block.filter.complex_weight.shape == (1, 8 // 2 + 1, 16, 2)
        assert block.norm.weight.eq(1).all() and block.norm.bias.eq(0).all()
    assert 0.01 < model.item_embedding.weight[1:].std().item() < 0.03
    assert model.item_embedding.weight[0].eq(0).all()
