"""LMulConfig + convert_: attention through SDPA and through hand-written matmuls, cached decoding with one
query, scope="all" Linear swapping, autograd, FLOP counting, and a real Hugging Face BERT."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from frugalnn import convert_
from frugalnn.lmul import lmul_matmul
from frugalnn.lmul.nn import LMulConfig, LMulLinear, lmul_sdpa
from frugalnn.routing import RoutedModule


class CachedAttention(torch.nn.Module):
    """Multi-head self-attention with a KV cache; calls SDPA (sdpa=True) or multiplies by hand."""

    def __init__(self, d=32, heads=4, kv_heads=4, sdpa=True):
        super().__init__()
        self.heads, self.kv_heads, self.dh, self.sdpa = heads, kv_heads, d // heads, sdpa
        self.q = torch.nn.Linear(d, d)
        self.kv = torch.nn.Linear(d, 2 * kv_heads * self.dh)
        self.o = torch.nn.Linear(d, d)
        self.cache = None

    def forward(self, x, use_cache=False):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.kv_heads, self.dh).permute(2, 0, 3, 1, 4)
        if use_cache and self.cache is not None:
            k, v = torch.cat([self.cache[0], k], 2), torch.cat([self.cache[1], v], 2)
        if use_cache:
            self.cache = (k, v)
        causal = t > 1  # a decoding step (one query) sees every cached key
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=self.kv_heads != self.heads)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
            if causal:
                s = s + torch.full((t, k.shape[2]), float("-inf")).triu(1)
            o = torch.matmul(torch.softmax(s, -1), v)
        return self.o(o.transpose(1, 2).reshape(b, t, -1))


def reference_attention(q, k, v, cfg, causal):
    s = lmul_matmul(q, k.transpose(-1, -2), cfg.mantissa_bits, cfg.rounding, cfg.offset) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), float("-inf"))
    return lmul_matmul(torch.softmax(s, -1), v, cfg.mantissa_bits, cfg.rounding, cfg.offset)


def test_config_validation_and_round_trip():
    cfg = LMulConfig(mantissa_bits=3, rounding="nearest", offset=4, scope="all")
    assert LMulConfig.from_dict(cfg.to_dict()) == cfg
    assert LMulConfig(mantissa_bits=4).offset_l == 3
    for bad, match in (({"mantissa_bits": 0}, "mantissa_bits"), ({"rounding": "up"}, "rounding"),
                       ({"scope": "mlp"}, "scope"), ({"offset": -1}, "offset")):
        with pytest.raises(ValueError, match=match):
            LMulConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys"):
        LMulConfig.from_dict({"bits": 3})


def test_sdpa_replacement_matches_torch_semantics_at_full_precision_shape():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    cfg = LMulConfig(mantissa_bits=4)
    sdpa = lmul_sdpa(cfg)
    torch.testing.assert_close(sdpa(q, k, v), reference_attention(q, k, v, cfg, False))
    torch.testing.assert_close(sdpa(q, k, v, is_causal=True), reference_attention(q, k, v, cfg, True))
    mask = torch.rand(5, 7) > 0.3
    mask[:, 0] = True
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (sdpa(q, k, v, attn_mask=mask) - want).abs().max() < 0.2  # approximately torch's masked attention
    additive = torch.zeros(5, 7).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(sdpa(q, k, v, attn_mask=mask), sdpa(q, k, v, attn_mask=additive))
    gq = torch.randn(2, 6, 5, 8)  # grouped-query: 6 query heads share 3 kv heads
    torch.testing.assert_close(sdpa(gq, k, v, enable_gqa=True),
                               sdpa(gq, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        sdpa(q, k, v, attn_mask=mask, is_causal=True)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_prefill_and_cached_decode_steps_are_routed(use_sdpa):
    torch.manual_seed(1)
    model = torch.nn.Sequential(CachedAttention(sdpa=use_sdpa))
    x = torch.randn(1, 9, 32)
    exact = model(x)
    cfg = LMulConfig(mantissa_bits=3)
    convert_(model, cfg)
    assert isinstance(model[0], RoutedModule) and "L-Mul (m=3, truncate, l=3) attention" in repr(model)
    full = model(x)
    assert (full - exact).abs().max() > 1e-3  # the attention really runs on L-Mul products
    # prefill 6 tokens, then 3 decoding steps of one query each against the growing cache
    steps = [model[0](x[:, :6], use_cache=True)] + [model[0](x[:, i:i + 1], use_cache=True) for i in range(6, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert (steps[-1] - exact[:, -1:]).abs().max() > 1e-3  # a decode step is L-Mul too, not fp32


def test_eager_and_sdpa_models_agree_under_lmul():
    torch.manual_seed(2)
    a, b = CachedAttention(sdpa=True), CachedAttention(sdpa=False)
    b.load_state_dict(a.state_dict())
    ma, mb = torch.nn.Sequential(a), torch.nn.Sequential(b)
    for m in (ma, mb):
        convert_(m, LMulConfig(mantissa_bits=4, rounding="nearest"))
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(ma(x), mb(x), rtol=1e-5, atol=1e-5)


def test_grouped_query_attention_is_routed():
    torch.manual_seed(3)
    model = torch.nn.Sequential(CachedAttention(heads=4, kv_heads=2))
    x = torch.randn(1, 5, 32)
    exact = model(x)
    convert_(model, LMulConfig(mantissa_bits=4))
    assert 1e-3 < (model(x) - exact).abs().max() < 0.5


def test_scope_all_swaps_linears_and_trains():
    torch.manual_seed(4)
    model = torch.nn.Sequential(CachedAttention(), torch.nn.Linear(32, 4))
    weight = model[1].weight
    convert_(model, LMulConfig(mantissa_bits=3, scope="all"))
    assert isinstance(model[1], LMulLinear) and model[1].weight is weight  # same Parameter: optimisers keep working
    assert isinstance(model[0].inner.q, LMulLinear)
    x = torch.randn(3, 6, 32)
    y = model[1](x)
    torch.testing.assert_close(y, lmul_matmul(x, weight.t(), 3) + model[1].bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    target = torch.randn(3, 6, 4)
    losses = []
    for _ in range(8):
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in model.parameters())


def test_flop_counter_sees_converted_models():
    model = torch.nn.Sequential(CachedAttention(d=32, heads=4), torch.nn.Linear(32, 8))
    x = torch.randn(2, 10, 32)
    convert_(model, LMulConfig(scope="all"))
    with FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()["Global"]
    linear_macs = 2 * 10 * (32 * 32 + 32 * 64 + 32 * 32 + 32 * 8)
    attention_macs = 2 * 4 * (10 * 10 * 8) * 2
    assert counts[torch.ops.frugalnn.lmul_matmul] == 2 * (linear_macs + attention_macs)
    assert sum(counts.values()) == counts[torch.ops.frugalnn.lmul_matmul]  # nothing left in float32 matmuls


def test_conversion_errors():
    with pytest.raises(ValueError, match="no module selected"):
        convert_(torch.nn.Sequential(torch.nn.Linear(2, 2)), LMulConfig())
    with pytest.raises(ValueError, match="no nn.Linear or attention"):
        convert_(torch.nn.Sequential(torch.nn.ReLU()), LMulConfig(scope="all"))
    model = torch.nn.Sequential(CachedAttention())
    convert_(model, LMulConfig())
    with pytest.raises(ValueError, match="already routed"):
        convert_(model, LMulConfig())
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    convert_(model, LMulConfig(scope="all"))
    with pytest.raises(ValueError, match="already an LMulLinear"):
        convert_(model, LMulConfig(scope="all"))
    two = torch.nn.Sequential(CachedAttention(), CachedAttention())
    convert_(two, LMulConfig(), filter_fn=lambda m, fqn: fqn == "1")
    assert not isinstance(two[0], RoutedModule) and isinstance(two[1], RoutedModule)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_real_bert_attention_is_routed(attn_implementation):
    transformers = pytest.importorskip("transformers")
    from frugalnn.data import MissingDataError, minilm_dir

    try:
        path = minilm_dir()
    except MissingDataError as e:
        pytest.skip(str(e))
    model = transformers.BertModel.from_pretrained(str(path), attn_implementation=attn_implementation).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        exact = model(input_ids=ids, attention_mask=mask).last_hidden_state
        convert_(model, LMulConfig(mantissa_bits=4))
        with FlopCounterMode(display=False) as counter:
            approx = model(input_ids=ids, attention_mask=mask).last_hidden_state
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.frugalnn.lmul_matmul] == 6 * 2 * 2 * (12 * 8 * 8 * 32)  # 6 layers, QK^T and PV
    diff = (approx - exact)[0, :7].abs().max()
    assert 1e-4 < diff < 1.0
