"""The MixPE group GEMM against its numpy reference on both backends: integer parts bit for bit
(unit scales make each output the exact integer sum), W4A8 serial == avx2 bit for bit, float
outputs within float32 rounding, odd shapes, every group size, edge values, thread counts, and
malformed calls."""
import numpy as np
import pytest

from frugalnn import _core
from frugalnn.kernels import available_backends, mixpe, mixpe_ref, use_backend

F32 = np.float32
SHAPES = [(1, 1, 1), (1, 32, 4), (2, 33, 5), (3, 64, 7), (4, 100, 3), (5, 129, 9), (7, 257, 13), (1, 4096, 8),
          (13, 300, 21)]


def packed_from(q, s, z, group, k):
    wp, sp, zp = mixpe_ref.pack_weights(q, s, z, group)
    return mixpe.PackedW4(wp, sp, zp, q.shape[0], k, group)


def random_integers(rng, m, k, n, group, edge=False):
    kp = mixpe_ref.padded(k, group)
    q = rng.integers(0, 16, (n, kp)).astype(np.uint8)
    aq = rng.integers(-127, 128, (m, kp)).astype(np.int8)
    if edge:  # the largest products and zeros: q = 15 against +-127 (and -128, which the binding accepts)
        q[:] = 15
        aq[:] = np.where(rng.random((m, kp)) < 0.5, -128, 127)
    q[:, k:] = 0
    aq[:, k:] = 0
    z = rng.integers(0, 16, (n, kp // group)).astype(np.uint8)
    asum = aq.reshape(m, -1, group).astype(np.int32).sum(axis=2).astype(np.int32)
    return q, z, aq, asum


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("edge", [False, True])
def test_integer_part_exact(backend, m, k, n, group, edge):
    rng = np.random.default_rng(m * 7 + k * 3 + n + group)
    q, z, aq, asum = random_integers(rng, m, k, n, group, edge)
    g = q.shape[1] // group
    s = np.ones((n, g), F32)
    w = packed_from(q, s, z, group, k)
    got = mixpe.w4a8_quantized(aq, asum, np.ones(m, F32), w)
    d = mixpe_ref.group_integers(q, z, aq, asum, group).sum(axis=2)
    assert np.abs(d).max() < 2 ** 24  # so the float32 outputs hold the integers exactly
    np.testing.assert_array_equal(got, d.astype(F32))


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("group", [32, 128])
def test_w4a8_float_against_reference(backend, m, k, n, group):
    rng = np.random.default_rng(k + n)
    x = rng.standard_normal((m, k)).astype(F32)
    wf = rng.standard_normal((n, k)).astype(F32)
    bias = rng.standard_normal(n).astype(F32)
    w = mixpe.PackedW4.from_float(wf, group)
    got = mixpe.w4a8(x, w, bias)
    want = mixpe.w4a8(x, w, bias, impl="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.skipif("avx2" not in available_backends(), reason="CPU lacks AVX2")
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_w4a8_backends_bit_exact(m, k, n):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((m, k)).astype(F32)
    w = mixpe.PackedW4.from_float(rng.standard_normal((n, k)).astype(F32), 64)
    outs = []
    for b in ("serial", "avx2"):
        with use_backend(b):
            outs.append(mixpe.w4a8(x, w, rng.standard_normal(n).astype(F32) * 0 + 0.5))
    np.testing.assert_array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_w4a16_against_reference(backend, m, k, n, dtype):
    import ml_dtypes

    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    rng = np.random.default_rng(m + k)
    x = rng.standard_normal((m, k)).astype(dt)
    w = mixpe.PackedW4.from_float(rng.standard_normal((n, k)).astype(F32), 32)
    got = mixpe.w4a16(x, w)
    want = mixpe.w4a16(x, w, impl="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_quantize_activations_match(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 200)).astype(F32) * 3
    x[2] = 0  # an all-zero token: scale 1, codes 0
    x[3, 5] = 1e30
    for group in (32, 64, 128):
        got = mixpe.quantize_activations(x, group)
        want = mixpe.quantize_activations(x, group, impl="numpy")
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_threads_do_not_change_results(backend, threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 300)).astype(F32)
    w = mixpe.PackedW4.from_float(rng.standard_normal((45, 300)).astype(F32), 128)
    np.testing.assert_array_equal(mixpe.w4a8(x, w, threads=threads), mixpe.w4a8(x, w, threads=1))
    np.testing.assert_array_equal(mixpe.w4a16(x, w, threads=threads), mixpe.w4a16(x, w, threads=1))


def test_accuracy_against_float():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 512)).astype(F32)
    wf = rng.standard_normal((64, 512)).astype(F32)
    w = mixpe.PackedW4.from_float(wf, 32)
    exact = x @ wf.T
    err = np.linalg.norm(mixpe.w4a8(x, w) - exact) / np.linalg.norm(exact)
    assert err < 0.15
    deq = np.linalg.norm(x @ w.dequantize().T - exact) / np.linalg.norm(exact)
    assert err < deq + 0.03  # int8 activations add little on top of the 4-bit weights


def test_empty_and_zero_k():
    w = mixpe.PackedW4.from_float(np.zeros((5, 0), F32), 32)
    y = mixpe.w4a8(np.zeros((3, 0), F32), w, np.arange(5, dtype=F32))
    np.testing.assert_array_equal(y, np.tile(np.arange(5, dtype=F32), (3, 1)))
    w = mixpe.PackedW4.from_float(np.ones((5, 40), F32), 32)
    assert mixpe.w4a8(np.zeros((0, 40), F32), w).shape == (0, 5)


def test_bad_calls():
    w = mixpe.PackedW4.from_float(np.ones((5, 40), F32), 32)
    x = np.ones((2, 40), F32)
    out = np.empty((2, 5), F32)
    with pytest.raises(ValueError, match="group"):
        _core.mixpe.w4a8(w.wp, w.sp, w.zp, 5, 40, 16, x, None, out)
    with pytest.raises(ValueError, match="wp"):
        _core.mixpe.w4a8(w.wp, w.sp, w.zp, 17, 40, 32, x, None, np.empty((2, 17), F32))
    with pytest.raises(ValueError, match="k"):
        _core.mixpe.w4a8(w.wp, w.sp, w.zp, 5, 2 ** 62, 32, x, None, out)
    with pytest.raises(TypeError, match="x"):
        _core.mixpe.w4a8(w.wp, w.sp, w.zp, 5, 40, 32, x.astype(np.float64), None, out)
    with pytest.raises(ValueError, match="x"):
        mixpe.w4a8(np.ones((2, 41), F32), w)
    with pytest.raises(ValueError, match="threads"):
        mixpe.w4a8(x, w, threads=0)
    with pytest.raises(ValueError, match="share memory"):
        _core.mixpe.w4a16(w.wp, w.sp, w.zp, 5, 40, 32, x, None, x.reshape(-1)[:10].reshape(2, 5))
    with pytest.raises(ValueError, match="group"):
        mixpe.PackedW4.from_float(np.ones((2, 40), F32), 48)


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_dequant_each_weight_kernel(backend, m, k, n):
    rng = np.random.default_rng(m * k + n)
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = mixpe.PackedW4.from_float(rng.standard_normal((n, k)).astype(F32), 64)
    got = mixpe.w4a16(x, w, dequant_each=True)
    want = mixpe.w4a16(x, w, dequant_each=True, impl="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))
    np.testing.assert_allclose(got, mixpe.w4a16(x, w), rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_quantize_non_finite_tokens(backend):
    x = np.ones((4, 70), F32)
    x[0, 3] = np.nan          # NaN is skipped by max|x| and coded 0
    x[1, 5] = np.inf          # max|x| = inf: every code 0, scale inf
    x[2, :] = -np.inf
    for group in (32, 128):
        got = mixpe.quantize_activations(x, group)
        want = mixpe.quantize_activations(x, group, impl="numpy")
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    w = mixpe.PackedW4.from_float(np.ones((5, 70), F32), 32)
    y = mixpe.w4a8(x, w)
    assert np.isfinite(y[3]).all() and np.isfinite(y[0]).all()
