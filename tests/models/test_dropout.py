"""The encoders' Dropout draws exactly nn.Dropout's mask (same output, gradient and generator
state), only faster on the CPU."""

import copy

import pytest
import torch
from torch import nn

from rclrec.config import EncoderConfig
from rclrec.models import build_encoder
from rclrec.models.layers import Dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("transposed", [False, True])  # strided input: draws in memory order
def test_same_mask_output_gradient_and_generator_state_as_nn_dropout(dtype, p, transposed):
    x = torch.randn(7, 13, 16).to(dtype)
    x = (x.transpose(1, 2) if transposed else x).requires_grad_()
    results = []
    for module in (nn.Dropout(p), Dropout(p)):
        torch.manual_seed(11)
        y = module.train()(x)
        (grad,) = torch.autograd.grad((y * torch.arange(y.shape[-1])).sum(), x)
        results.append((y, grad, torch.get_rng_state()))
    (y_ref, g_ref, state_ref), (y, g, state) = results
    assert torch.equal(y, y_ref) and torch.equal(g, g_ref) and torch.equal(state, state_ref)
    assert 0 < int((y == 0).sum()) < y.numel()  # some elements dropped, some kept


def test_outside_training_and_at_the_ends_it_is_nn_dropout():
    x = torch.randn(4, 8)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


@pytest.mark.parametrize("encoder", ["sasrec", "fmlp"])
def test_a_training_encoder_gives_the_same_states_as_with_nn_dropout(encoder):
    cfg = EncoderConfig(name=encoder, max_len=8, hidden_dim=16, num_heads=2, inner_dim=32)
    torch.manual_seed(0)
    ours = build_encoder(cfg, num_items=20).train()
    reference = copy.deepcopy(ours)
    swapped = 0
    for module in reference.modules():
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
                swapped += 1
    assert swapped >= 3
    x = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 6, 7]])
    outputs = []
    for model in (reference, ours):
        torch.manual_seed(5)
        h = model(x)
        h.square().sum().backward()
        outputs.append((h, [p.grad for p in model.parameters()]))
    assert torch.equal(outputs[0][0], outputs[1][0])
    for a, b in zip(outputs[0][1], outputs[1][1], strict=True):
        assert torch.equal(a, b)
