"""The compiled decode-step pieces (csrc/llama/) against their numpy reference, both backends.

Tolerances: rope is bit-exact (same float32 operations); rms_norm takes its sum of squares in
float64 on both sides, in a different order, so results agree to 1 ulp; attend, silu_mul and
gemv are compared with a float64 reference and differ by float32 summation order (and, for AVX2,
a polynomial exp of at most 2 ulp): relative 1e-5 of the magnitudes involved.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn import _core
from frugalnn.kernels import llama as kl

rng = np.random.default_rng(0)
EDGE = np.array([0.0, -0.0, 1e-40, -1e-40, 1e-30, 3.0, -3.0, 80.0, -80.0, 100.0, -100.0, 1e30], np.float32)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("n", [1, 3, 8, 13, 64, 576, 1001])
def test_rms_norm(backend, n):
    x, w = randn(n, scale=3), randn(n)
    np.testing.assert_array_max_ulp(kl.rms_norm(x, w, 1e-5), kl.rms_norm(x, w, 1e-5, impl="numpy"), maxulp=1)


def test_rms_norm_edges(backend):
    w = np.ones(EDGE.size, np.float32)
    np.testing.assert_array_max_ulp(kl.rms_norm(EDGE, w, 1e-5), kl.rms_norm(EDGE, w, 1e-5, impl="numpy"), maxulp=1)
    zeros = np.zeros(9, np.float32)
    assert not kl.rms_norm(zeros, np.ones(9, np.float32), 1e-5).any()
    for bad in (np.inf, np.nan):
        x = randn(20)
        x[7] = bad
        out = kl.rms_norm(x, np.ones(20, np.float32), 1e-5)
        ref = kl.rms_norm(x, np.ones(20, np.float32), 1e-5, impl="numpy")
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))  # inf / inf -> nan, as torch gives


@pytest.mark.parametrize("heads,d,rope_dim", [(1, 2, 2), (3, 64, 64), (12, 64, 32), (2, 10, 10), (4, 18, 14), (5, 16, 0)])
def test_rope_bit_exact(backend, heads, d, rope_dim):
    x = randn(heads, d, scale=5)
    ang = rng.uniform(-30, 30, rope_dim // 2)
    cs = np.stack([np.cos(ang), np.sin(ang)], -1).astype(np.float32)
    np.testing.assert_array_equal(kl.rope(x, cs, rope_dim), kl.rope(x, cs, rope_dim, impl="numpy"))


def test_rope_matches_torch_complex_product(backend):
    import torch

    x, ang = randn(6, 64), rng.uniform(-100, 100, 32)
    cs = np.stack([np.cos(ang), np.sin(ang)], -1).astype(np.float32)
    xc = torch.view_as_complex(torch.from_numpy(x).view(6, 32, 2))
    rot = torch.view_as_complex(torch.from_numpy(cs))
    want = torch.view_as_real(xc * rot).reshape(6, 64).numpy()
    np.testing.assert_array_equal(kl.rope(x, cs), want)  # what the torch model computes, bit for bit


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 9).map(lambda p: 2 * p)),
                  elements=st.floats(-1e6, 1e6, width=32)))
def test_rope_property(x):
    cs = np.tile(np.array([[0.6, 0.8]], np.float32), (x.shape[1] // 2, 1))
    for b in _core_backends():
        with b:
            np.testing.assert_array_equal(kl.rope(x, cs), kl.rope(x, cs, impl="numpy"))


def _core_backends():
    from frugalnn.kernels import available_backends, use_backend

    return [use_backend(b) for b in available_backends()]


@pytest.mark.parametrize("g,s,d", [(1, 1, 1), (3, 7, 64), (1, 9, 128), (4, 33, 16), (2, 100, 12), (3, 17, 70)])
def test_attend(backend, g, s, d):
    q, k, v = randn(g, d), randn(s, d), randn(s, d)
    out, ref = kl.attend(q, k, v), kl.attend(q, k, v, impl="numpy")
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(v).max())


def test_attend_matches_torch_sdpa(backend):
    import torch
    import torch.nn.functional as F

    q, k, v = randn(3, 64, scale=2), randn(40, 64, scale=2), randn(40, 64)
    want = F.scaled_dot_product_attention(*(torch.from_numpy(a)[None, None] for a in (q, k, v)))[0, 0].numpy()
    np.testing.assert_allclose(kl.attend(q, k, v), want, rtol=1e-5, atol=1e-6)


def test_attend_edges(backend):
    q, k, v = randn(2, 8), randn(5, 8), randn(5, 8)
    k[2] = 0.0
    np.testing.assert_allclose(kl.attend(q, k, v, 1e3), kl.attend(q, k, v, 1e3, impl="numpy"), rtol=1e-5, atol=1e-6)
    q[1, 3] = np.nan
    out = kl.attend(q, k, v)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()  # a NaN query row poisons only itself
    v[4, 0] = np.inf
    assert np.isinf(kl.attend(q[:1], k, v)[0, 0])


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1536, 3001])
def test_silu_mul(backend, n):
    g, u = randn(n, scale=6), randn(n)
    np.testing.assert_allclose(kl.silu_mul(g, u), kl.silu_mul(g, u, impl="numpy"), rtol=2e-6, atol=1e-30)


def test_silu_mul_edges(backend):
    g = np.concatenate([EDGE, np.array([np.inf, -np.inf, np.nan, 88.0, 89.0, -88.0, -89.0, -104.0], np.float32)])
    u = np.ones_like(g)
    out, ref = kl.silu_mul(g, u), kl.silu_mul(g, u, impl="numpy")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(out[finite], ref[finite], rtol=2e-6, atol=1e-30)
    assert out[np.isinf(ref)].tolist() == ref[np.isinf(ref)].tolist()


def test_silu_mul_sweeps_the_whole_exp_range(backend):
    """SiLU needs exp(-v) for any v (common/vexp.h, not the softmax-only exp): every float32 result
    stays within float32 rounding of the float64 reference, overflowing and underflowing ends included."""
    g = np.linspace(-110.0, 110.0, 400_001, dtype=np.float32)
    u = np.ones_like(g)
    out, ref = kl.silu_mul(g, u), kl.silu_mul(g, u, impl="numpy")
    # Below v = -88.72 exp(-v) overflows to inf in float32 and v / (1 + inf) gives -0 where the true
    # value v * e^v is a tiny float (|.| < 3e-37): both backends flush it, hence the atol.
    np.testing.assert_allclose(out, ref, rtol=4e-6, atol=3e-37)
    assert np.isfinite(out).all()


def test_silu_matches_torch(backend):
    import torch
    import torch.nn.functional as F

    g, u = randn(1000, scale=8), randn(1000)
    want = (F.silu(torch.from_numpy(g)) * torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(kl.silu_mul(g, u), want, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("m,k", [(1, 1), (3, 7), (4, 8), (5, 33), (64, 576), (130, 100), (7, 1536)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemv(backend, m, k, threads):
    w, x = randn(m, k), randn(k)
    out, ref = kl.gemv(w, x, threads=threads), kl.gemv(w, x, impl="numpy")
    bound = 1e-6 * k * (np.abs(w) @ np.abs(x))  # float32 summation-order error bound
    assert np.all(np.abs(out - ref) <= bound + 1e-30)


def test_gemv_edges(backend):
    w = np.ones((3, 10), np.float32)
    x = np.zeros(10, np.float32)
    x[4] = np.inf
    out = kl.gemv(w, x)
    assert np.isinf(out).all()
    w[1, 4] = 0.0
    assert np.isnan(kl.gemv(w, x)[1])  # 0 * inf
    assert kl.gemv(np.zeros((0, 4), np.float32), np.ones(4, np.float32)).shape == (0,)


def test_bad_arguments():
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        kl.rms_norm(np.ones(4), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="w: expected shape"):
        kl.rms_norm(np.ones(4, np.float32), np.ones(5, np.float32))
    with pytest.raises(ValueError, match="at least one"):
        kl.rms_norm(np.ones(0, np.float32), np.ones(0, np.float32))
    with pytest.raises(ValueError, match="eps"):
        kl.rms_norm(np.ones(4, np.float32), np.ones(4, np.float32), -1.0)
    with pytest.raises(ValueError, match="rope_dim"):
        kl.rope(np.ones((2, 8), np.float32), np.ones((2, 2), np.float32), 10)
    with pytest.raises(ValueError, match="cs"):
        kl.rope(np.ones((2, 8), np.float32), np.ones((3, 2), np.float32), 4)
    with pytest.raises(ValueError, match="keys"):
        kl.attend(np.ones((2, 8), np.float32), np.ones((3, 4), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="at least one position"):
        kl.attend(np.ones((2, 8), np.float32), np.ones((0, 8), np.float32), np.ones((0, 8), np.float32))
    with pytest.raises(ValueError, match="x: expected shape"):
        kl.gemv(np.ones((2, 8), np.float32), np.ones(7, np.float32))
    with pytest.raises(ValueError, match="threads"):
        kl.gemv(np.ones((2, 8), np.float32), np.ones(8, np.float32), threads=0)
    # the binding itself refuses strided and mis-shaped arrays instead of reading past them
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.llama.silu_mul(np.ones(8, np.float32)[::2], np.ones(4, np.float32), np.empty(4, np.float32))
    with pytest.raises(ValueError, match="out"):
        _core.llama.attend(np.ones((2, 8), np.float32), np.ones((3, 8), np.float32), np.ones((3, 8), np.float32),
                           1.0, np.empty((2, 7), np.float32))
    with pytest.raises(ValueError, match="rope_dim"):
        _core.llama.rope(np.ones((2, 8), np.float32), 3, np.ones((1, 2), np.float32))


# ---- issue 19: scale, head dim 0, overlapping outputs, the decoder's outputs -----------------------

@pytest.mark.parametrize("scale", [1e300, float("nan"), float("inf"), -1e39])
def test_attend_validates_scale(scale):
    q = np.ones((2, 8), np.float32)
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="scale: expected a finite float32 value"):
            kl.attend(q, q, q, scale=scale, impl=impl)
    with pytest.raises(ValueError, match="scale: expected a finite float32 value"):
        _core.llama.attend(q, q, q, scale, np.empty((2, 8), np.float32))


def test_attend_accepts_numpy_scalar_scale(backend):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 8)).astype(np.float32) for _ in range(3))
    np.testing.assert_array_equal(kl.attend(q, k, v, scale=np.float32(0.25)), kl.attend(q, k, v, scale=0.25))


def test_attend_head_dim_0_is_a_value_error():
    # the default scale 1 / sqrt(0) raised ZeroDivisionError
    z = np.ones((2, 0), np.float32)
    with pytest.raises(ValueError, match="head dim 0"):
        kl.attend(z, z, z)


def test_elementwise_outputs_may_be_the_input_but_never_a_shifted_view(backend):
    buf = np.random.default_rng(1).standard_normal(48).astype(np.float32)
    for args in ((buf[:16], buf[16:32], buf[8:24]), (buf[:16], buf[16:32], buf[17:33])):
        with pytest.raises(ValueError, match="partially overlap"):
            _core.llama.silu_mul(*args)
    gate, up = buf[:16].copy(), buf[16:32].copy()
    expected = kl.silu_mul(gate, up)
    _core.llama.silu_mul(gate, up, gate)  # in place: element i is read before it is written
    np.testing.assert_array_equal(gate, expected)
    x, w = buf[:16].copy(), np.ones(16, np.float32)
    with pytest.raises(ValueError, match="partially overlap"):
        _core.llama.rms_norm(buf[:16], w, 1e-5, buf[1:17])
    expected = kl.rms_norm(x, w)
    _core.llama.rms_norm(x, w, 1e-5, x)
    np.testing.assert_array_equal(x, expected)


def test_rms_norm_eps_must_be_finite():
    x = np.ones(4, np.float32)
    for eps in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="eps"):
            kl.rms_norm(x, x, eps)
        with pytest.raises(ValueError, match="eps"):
            _core.llama.rms_norm(x, x, eps, np.empty(4, np.float32))


def _decoder(vocab=10, dim=8):
    """A finished one-layer decoder and its weights (dense, ones)."""
    f = lambda *s: np.ones(s, np.float32)  # noqa: E731
    emb = f(vocab, dim)
    d = _core.llama.Decoder(dim, 1, 2, 1, 4, 4, 8, vocab, 4, 1e-5, emb, f(4, 2, 2), f(dim), 1)
    weights = dict(qkv=f(16, dim), o=f(dim, 8), gate_up=f(16, dim), down=f(dim, 8))
    d.set_norms(0, f(dim), f(dim))
    for slot, w in weights.items():
        d.add_dense(0, slot, w, 1)
    weights["head"] = f(vocab, dim)
    d.add_dense(-1, "head", weights["head"], 1)
    d.finish()
    return d, emb, weights


def test_decoder_refuses_logits_or_cache_over_its_weights():
    # only the KV cache was checked: logits could be written into the embedding
    d, emb, weights = _decoder()
    k = np.zeros((1, 1, 1, 4, 4), np.float32)
    d.set_cache(k, np.zeros_like(k))
    for logits in (emb.reshape(-1)[:10], emb.reshape(-1)[5:15], weights["head"].reshape(-1)[:10],
                   weights["o"].reshape(-1)[1:11]):
        with pytest.raises(ValueError, match="logits shares memory with one of the decoder's weights"):
            d.step(0, 0, logits)
    before = emb.copy()
    d.step(0, 0, np.empty(10, np.float32))  # a separate buffer works
    np.testing.assert_array_equal(emb, before)
    cache = weights["qkv"].reshape(-1)[:16].reshape(1, 1, 1, 4, 4)
    with pytest.raises(ValueError, match="k_cache shares memory"):
        d.set_cache(cache, np.zeros_like(k))
