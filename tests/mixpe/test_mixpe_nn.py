"""MixPELinear / MixPEConfig: the op against the kernel, fake tensors, convert_ on MiniLM and on our
Llama (SmolLM2-135M), config validation and round trip, shift-add == multiply."""
import numpy as np
import pytest
import torch

import frugalnn
from frugalnn.kernels import mixpe as kernel
from frugalnn.mixpe import MixPEConfig, MixPELinear, matmul, multiply_matmul, shift_add_matmul


@pytest.mark.parametrize("act_bits", [8, 16])
def test_linear_matches_kernel(backend, act_bits):
    torch.manual_seed(0)
    lin = torch.nn.Linear(100, 37)
    m = MixPELinear.from_linear(lin, act_bits=act_bits, group_size=32)
    x = torch.randn(2, 3, 100)
    y = m(x)
    assert y.shape == (2, 3, 37)
    flat = x.reshape(-1, 100).numpy()
    if act_bits == 16:
        want = kernel.w4a16(flat.astype(np.float16), m.packed, lin.bias.detach().numpy())
    else:
        want = kernel.w4a8(flat, m.packed, lin.bias.detach().numpy())
    np.testing.assert_array_equal(y.reshape(-1, 37).detach().numpy(), want)
    ref = lin(x).detach()
    assert float((y - ref).norm() / ref.norm()) < 0.15


def test_fake_tensor_and_compile_shape():
    from torch._subclasses.fake_tensor import FakeTensorMode

    m = MixPELinear.from_linear(torch.nn.Linear(64, 8), group_size=64)
    with FakeTensorMode(allow_non_fake_inputs=True):
        y = torch.ops.frugalnn.mixpe_matmul(torch.empty(5, 64), m.wp, m.sp, m.zp, None, 8, 64, 64, 8, "float16", None)
        assert y.shape == (5, 8)
    torch.library.opcheck(torch.ops.frugalnn.mixpe_matmul, (torch.randn(3, 64), m.wp, m.sp, m.zp, m.bias, 8, 64, 64,
                                                           8, "float16", 1))


def test_config_validation_and_round_trip():
    c = MixPEConfig(act_bits=16, group_size=32, act_dtype="bfloat16")
    assert MixPEConfig.from_dict(c.to_dict()) == c
    for bad in (dict(weight_bits=3), dict(act_bits=4), dict(group_size=48), dict(act_dtype="fp8"), dict(threads=0)):
        with pytest.raises(ValueError):
            MixPEConfig(**bad)


def test_convert_minilm():
    from frugalnn.models.minilm import embed, load_minilm

    model, tok = load_minilm()
    texts = ["MixPE applies the group scale after the integer sum.", "A cat sat on the mat."]
    ref = embed(model, tok, texts)
    frugalnn.convert_(model, MixPEConfig(act_bits=8, group_size=128))
    assert sum(isinstance(m, MixPELinear) for m in model.modules()) == 37  # 6 layers x 6 + the pooler
    got = embed(model, tok, texts)
    assert float((got * ref).sum(-1).min()) > 0.95


def test_convert_llama():
    from frugalnn import llm

    model = llm.load("smollm2", bits="fp32")
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    with torch.inference_mode():
        ref = model(ids)
    frugalnn.convert_(model, MixPEConfig(act_bits=8, group_size=64), filter_fn=lambda m, fqn: "lm_head" not in fqn)
    assert any(isinstance(m, MixPELinear) for m in model.modules())
    with torch.inference_mode():
        got = model(ids)
    assert got.shape == ref.shape
    assert torch.isfinite(got).all()
    assert float(torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0)) > 0.9


@pytest.mark.parametrize("act_bits", [8, 16])
@pytest.mark.parametrize("group", [32, 128])
def test_shift_add_equals_multiply(act_bits, group):
    rng = np.random.default_rng(act_bits + group)
    x = rng.standard_normal((3, 150)).astype(np.float32)
    x[0, :4] = [0.0, 6e-8, -65000.0, 1e-5]  # zero, fp16 subnormal, near the fp16 top, small normal
    w = rng.standard_normal((7, 150)).astype(np.float32)
    a = shift_add_matmul(x, w, group, act_bits)
    b = multiply_matmul(x, w, group, act_bits)
    np.testing.assert_array_equal(a, b)
    if act_bits == 8:  # and both are the kernel's numbers (same integers, same float order)
        np.testing.assert_allclose(a, matmul(x, w, group, 8, threads=1), rtol=1e-5, atol=1e-3)


def test_matmul_bad_act_bits():
    with pytest.raises(ValueError, match="act_bits"):
        matmul(np.ones((1, 32), np.float32), np.ones((2, 32), np.float32), 32, 4)
