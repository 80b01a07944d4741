"""LUTLinear and convert_(model, LUTConfig): real MiniLM weights, torch.compile, flop counting."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import frugalnn
from frugalnn.tmac import LUTConfig, LUTLinear


def minilm_ffn() -> nn.Sequential:
    from frugalnn.data.packages import minilm_tensor

    up, down = nn.Linear(384, 1536), nn.Linear(1536, 384)
    with torch.no_grad():
        for lin, name in ((up, "intermediate.dense"), (down, "output.dense")):
            lin.weight.copy_(torch.from_numpy(np.array(minilm_tensor(f"encoder.layer.0.{name}.weight"))))
            lin.bias.copy_(torch.from_numpy(np.array(minilm_tensor(f"encoder.layer.0.{name}.bias"))))
    return nn.Sequential(up, nn.GELU(), down)


def rel_err(y, ref):
    return float(((y - ref) ** 2).sum() / (ref**2).sum())


def dequantized(model):
    out = nn.Sequential(*[nn.Linear(m.in_features, m.out_features) if isinstance(m, LUTLinear) else m for m in model])
    with torch.no_grad():
        for new, old in zip(out, model):
            if isinstance(old, LUTLinear):
                new.weight.copy_(torch.from_numpy(old.lut_weight.dequantize()))
                new.bias.copy_(old.bias)
    return out


def test_convert_real_model_layers():
    model = minilm_ffn()
    x = torch.randn(4, 7, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
    frugalnn.convert_(model, LUTConfig(bits=4, group_size=64))
    assert isinstance(model[0], LUTLinear) and isinstance(model[2], LUTLinear)
    assert "bits=4, group_size=64" in repr(model)
    assert not any(isinstance(p, nn.Parameter) and p.dim() == 2 for p in model.parameters())  # fp32 weights gone
    with torch.no_grad():
        y = model(x)
        assert y.shape == ref.shape and rel_err(y, ref) < 0.05  # 4-bit weights
        assert rel_err(y, dequantized(model)(x)) < 2e-3  # int8 tables alone
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() == 2 * 4 * 7 * (384 * 1536 * 2)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), y, rtol=1e-4, atol=1e-4)  # inductor fuses the GELU differently


def test_filter_fn_and_ternary():
    model = minilm_ffn()
    frugalnn.convert_(model, LUTConfig(bits="ternary"), filter_fn=lambda m, fqn: fqn == "2")
    assert isinstance(model[0], nn.Linear) and isinstance(model[2], LUTLinear)
    assert "ternary" in repr(model[2])


def test_incompatible_layer_is_named():
    model = nn.Sequential(nn.Linear(64, 8), nn.Linear(8, 10), nn.Linear(10, 4))
    with pytest.raises(ValueError, match="^2: in_features 10"):
        frugalnn.convert_(model, LUTConfig(bits=2, group_size=4), filter_fn=lambda m, fqn: fqn != "1")


def test_bf16_input_and_state_dict_roundtrip():
    lin = nn.Linear(128, 40)
    layer = LUTLinear.from_linear(lin, bits=3, group_size=32)
    x = torch.randn(2, 128, generator=torch.Generator().manual_seed(1))
    y = layer(x)
    assert layer(x.to(torch.bfloat16)).dtype == torch.bfloat16
    other = LUTLinear(layer.lut_weight, lin.bias)
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(x), y, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [dict(bits=0), dict(bits="2"), dict(group_size=30), dict(threads=0)])
def test_config_validation_and_roundtrip(bad):
    with pytest.raises(ValueError):
        LUTConfig(**bad)
    c = LUTConfig(bits=3, group_size=32, symmetric=False)
    assert LUTConfig.from_dict(c.to_dict()) == c
