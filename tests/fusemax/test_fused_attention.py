"""The fused kernel as a torch op: equals SDPA, has gradients, traces, is counted, converts models."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import frugalnn
from frugalnn.fusemax.nn import FusedAttentionConfig, attention_flops
from frugalnn.routing import RoutedModule

op = torch.ops.frugalnn.fused_attention


class SelfAttention(torch.nn.Module):
    def __init__(self, d=16, heads=2, causal=True, mask=False):
        super().__init__()
        self.qkv, self.heads, self.causal, self.mask = torch.nn.Linear(d, 3 * d), heads, causal, mask

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (y.view(b, t, self.heads, -1).transpose(1, 2) for y in self.qkv(x).chunk(3, -1))
        mask = torch.ones(t, t, dtype=torch.bool).tril() if self.mask else None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and not self.mask)
        return o.transpose(1, 2).reshape(b, t, d)


@pytest.mark.parametrize("causal", [False, True])
def test_op_equals_sdpa_with_gradients(causal):
    q = torch.randn(2, 4, 33, 16, requires_grad=True)
    k, v = torch.randn(2, 2, 40, 16, requires_grad=True), torch.randn(2, 2, 40, 8, requires_grad=True)
    out = op(q, k, v, causal, None, True, None)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    refs = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for g, r in zip(grads, refs):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_op_checks_and_fake_tensor():
    torch.library.opcheck(op, (torch.randn(1, 2, 5, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 4), True, 0.5,
                               False, 1), test_utils=("test_schema", "test_faketensor"))
    with pytest.raises(TypeError, match="float32"):
        op(torch.randn(1, 3, 4, dtype=torch.float64), torch.randn(1, 3, 4), torch.randn(1, 3, 4))


def test_flop_counter_counts_the_op_like_sdpa():
    q, k, v = torch.randn(2, 3, 20, 16), torch.randn(2, 3, 30, 16), torch.randn(2, 3, 30, 8)
    with FlopCounterMode(display=False) as ours:
        op(q, k, v)
    with FlopCounterMode(display=False) as theirs:
        F.scaled_dot_product_attention(q, k, v)
    assert ours.get_total_flops() == theirs.get_total_flops() == attention_flops(q.shape, k.shape, v.shape)
    assert attention_flops(q.shape, k.shape, v.shape) == 2 * 6 * 20 * 30 * (16 + 8)


def test_convert_routes_sdpa_and_compiles():
    model = torch.nn.Sequential(SelfAttention(), torch.nn.Linear(16, 4))
    x = torch.randn(3, 21, 16)
    ref = model(x)
    frugalnn.convert_(model, FusedAttentionConfig(threads=1))
    assert isinstance(model[0], RoutedModule) and "fused 1-pass attention" in repr(model)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
    assert any("fused_attention" in str(k) for k in fc.get_flop_counts()["Global"])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=False)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)


def test_unsupported_arguments_error_or_fall_back():
    model = torch.nn.Sequential(SelfAttention(mask=True))
    x = torch.randn(1, 9, 16)
    ref = model(x)
    frugalnn.convert_(model, FusedAttentionConfig())
    with pytest.raises(ValueError, match="attn_mask"):
        model(x)
    config = FusedAttentionConfig(unsupported="fallback")
    model = torch.nn.Sequential(SelfAttention(mask=True))
    model.load_state_dict(torch.nn.Sequential(SelfAttention(mask=True)).state_dict())
    ref = model(x)
    frugalnn.convert_(model, config)
    torch.testing.assert_close(model(x), ref)
    assert config.fallbacks == 1


def test_config_validation_and_round_trip():
    c = FusedAttentionConfig(threads=2, unsupported="fallback")
    assert FusedAttentionConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="threads"):
        FusedAttentionConfig(threads=0)
    with pytest.raises(ValueError, match="unsupported"):
        FusedAttentionConfig(unsupported="ignore")
    with pytest.raises(ValueError, match="unknown keys"):
        FusedAttentionConfig.from_dict({"tile": 4})
