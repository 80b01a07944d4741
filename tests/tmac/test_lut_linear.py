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


def test_one_token_path_is_the_operators_answer():
    """A one-row input takes LUTLinear's direct kernel call (threads and tiles resolved once); with a
    mode active (here FlopCounterMode) the same call goes through torch.ops.frugalnn.lut_matmul."""
    lin = nn.Linear(128, 40)
    layer = LUTLinear.from_linear(lin, bits=4, group_size=32, threads=1)
    x = torch.randn(1, 1, 128, generator=torch.Generator().manual_seed(2))
    direct = layer(x)
    with FlopCounterMode(display=False) as fc:
        through_op = layer(x)
    assert fc.get_total_flops() == 2 * 128 * 40  # the one-token call is visible to the mode
    torch.testing.assert_close(direct, through_op, rtol=0, atol=0)
    expected = frugalnn.tmac.matmul(x.reshape(1, 128), layer.lut_weight, threads=1) + lin.bias
    torch.testing.assert_close(direct.reshape(1, 40), expected, rtol=0, atol=0)
    assert direct.shape == (1, 1, 40) and layer(x[0, 0]).shape == (40,)
    assert layer.gemv_plan().threads == 1 and layer.gemv_plan() is layer.gemv_plan()  # resolved once
    compiled = torch.compile(layer)
    torch.testing.assert_close(compiled(x), direct, rtol=0, atol=0)


def test_changes_are_seen_and_copies_are_independent():
    import copy

    layer = LUTLinear.from_linear(nn.Linear(64, 32, bias=False), bits=2, group_size=32)
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    y = layer(x)
    twin = copy.deepcopy(layer)
    torch.testing.assert_close(twin(x), y, rtol=0, atol=0)
    layer.ws = layer.ws * 2  # symmetric weights: every output doubles, on the one-token path too
    torch.testing.assert_close(layer(x), 2 * y)
    torch.testing.assert_close(twin(x), y, rtol=0, atol=0)  # the copy holds its own buffers
    layer.set_threads(2)
    assert layer.gemv_plan().threads == 2
    layer.set_threads(None)
    assert layer.gemv_plan().threads == frugalnn._core.hardware_threads()  # None: all cores
    with pytest.raises(ValueError, match="threads"):
        layer.set_threads(-1)
    with pytest.raises(ValueError, match="threads"):
        LUTLinear(layer.lut_weight, threads=0)
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., 64\]"):
        layer(torch.randn(32, 2))  # 64 values, but not a row of 64
    assert layer.nbytes == layer.lut_weight.nbytes and 2 < layer.bits_per_weight < 32


@pytest.mark.parametrize("convert", ["half", "double", "bfloat16"])
def test_model_wide_dtype_change_keeps_the_stored_weight(convert):
    # issue 19 item 17: after model.half() / .double() LUTLinear failed with "ws: expected dtype float32"
    torch.manual_seed(0)
    lin = nn.Linear(96, 24)
    layer = LUTLinear.from_linear(lin, bits=4, group_size=32, symmetric=False)
    x = torch.randn(5, 96)
    before = layer(x)
    ws, zt, bias = layer.ws.clone(), layer.zt.clone(), layer.bias.detach().clone()
    model = getattr(nn.Sequential(layer), convert)()
    dtype = {"half": torch.float16, "double": torch.float64, "bfloat16": torch.bfloat16}[convert]
    assert layer.ws.dtype == layer.zt.dtype == layer.bias.dtype == torch.float32
    assert torch.equal(layer.ws, ws) and torch.equal(layer.zt, zt) and torch.equal(layer.bias, bias)
    y = model(x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), layer(x.to(dtype).float()).to(dtype).float())
    assert torch.equal(model(x.to(dtype)[0]).float(), layer(x.to(dtype)[:1]).float()[0])
    model.float()
    assert torch.equal(layer(x), before)
