import torch
from torch.nn import functional as F

from rclrec.config import EncoderConfig
from rclrec.models import build_encoder, sasrec


def make(**kw):
    torch.manual_seed(0)
    cfg = EncoderConfig(max_len=8, hidden_dim=16, num_heads=2, inner_dim=32, **kw)
    return build_encoder(cfg, num_items=20).eval()


def test_shapes_and_finite():
    enc = make()
    x = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 0, 7]])
    h = enc(x)
    assert h.shape == (2, 8, 16) and torch.isfinite(h).all()


def test_causal_future_items_do_not_change_the_past():
    enc = make()
    x = torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6]])
    y = x.clone()
    y[0, -1] = 9
    assert torch.allclose(enc(x)[0, :-1], enc(y)[0, :-1], atol=1e-6)
    assert not torch.allclose(enc(x)[0, -1], enc(y)[0, -1])


def test_padding_width_does_not_change_last_state():
    enc = make()
    full = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    trimmed = full[:, 5:]
    assert torch.allclose(enc(full)[:, -1], enc(trimmed)[:, -1], atol=1e-5)


def test_pre_ln_option_runs():
    enc = make(norm_first=True)
    assert enc.final_norm is not None
    assert torch.isfinite(enc(torch.tensor([[0, 1, 2]]))).all()


def test_gradients_reach_embeddings():
    enc = make().train()
    # (a plain sum is constant after LayerNorm, so project on a fixed direction)
    (enc(torch.tensor([[0, 1, 2, 3]]))[:, -1] @ torch.arange(16.0)).sum().backward()
    assert enc.item_embedding.weight.grad[1:4].abs().sum() > 0


def test_last_state_equals_the_last_position_of_forward():
    x = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6, 7, 8]])
    for norm_first in (False, True):
        enc = make(norm_first=norm_first, num_blocks=3)
        assert enc.last_state(x).shape == (3, 16)
        assert torch.allclose(enc.last_state(x), enc(x)[:, -1], atol=1e-6)


def test_item_table_is_the_weight_itself_without_input_only_tokens():
    """No slice when there is nothing to cut: a slice's backward zero-fills a gradient the size
    of the table every step (a large catalogue's dominant cost)."""
    plain = build_encoder(EncoderConfig(), 30)
    assert plain.item_table is plain.item_embedding.weight
    with_mask = build_encoder(EncoderConfig(), 30, extra_tokens=1)
    assert with_mask.item_table.shape[0] == 31
    assert with_mask.item_table.data_ptr() == with_mask.item_embedding.weight.data_ptr()


def test_training_attention_on_the_cpu_is_sdpa_with_dropout_bit_for_bit(monkeypatch):
    """The CPU training path (math attention, the probabilities' dropout drawn by Dropout) gives
    the states, last states, gradients and generator state of F.scaled_dot_product_attention
    with dropout_p, padding rows included."""
    x = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 3, 7], [1, 2, 3, 4, 5, 6, 7, 8]])
    results, calls, ours = [], [], sasrec.math_attention
    for reference in (True, False):
        enc = make(attn_dropout=0.3).train()
        if reference:
            monkeypatch.setattr(sasrec, "math_attention", lambda q, k, v, mask, dropout:
                                F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                               dropout_p=dropout.p))
        else:
            monkeypatch.setattr(sasrec, "math_attention", lambda *a: calls.append(1) or ours(*a))
        torch.manual_seed(5)
        h, last = enc(x), enc.last_state(x)
        (h.square().sum() + last.sum()).backward()
        results.append((h, last, [p.grad for p in enc.parameters()], torch.get_rng_state()))
        monkeypatch.undo()
    (h_ref, last_ref, g_ref, state_ref), (h, last, g, state) = results
    assert torch.equal(h, h_ref) and torch.equal(last, last_ref)
    assert all(torch.equal(a, b) for a, b in zip(g, g_ref, strict=True))
    assert torch.equal(state, state_ref) and len(calls) == 4  # 2 blocks, forward + last_state
    assert not torch.equal(h, make(attn_dropout=0.3).eval()(x))  # dropout did act
