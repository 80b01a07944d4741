"""frugalnn.dfp.gemm.matmul: DFP operands or float arrays in, the container kind preserved, the
result equal to the kernel on the quantized operands and close to the float64 product."""
import numpy as np
import pytest

from frugalnn.dfp.gemm import default_chunk, matmul
from frugalnn.formats.dfp import DFP
from frugalnn.kernels import dfp as kernel


def _data(seed=0, m=37, k=300, n=23):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def test_float_inputs_are_quantized_then_multiplied(backend):
    a, b = _data()
    qa, qb = DFP.from_float(a), DFP.from_float(b)
    want = kernel.gemm(qa.mantissa, qb.mantissa, int(qa.exponent[0]), int(qb.exponent[0]), chunk=31, impl="numpy")
    got = matmul(a, b)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(matmul(qa, qb).view(np.uint32), want.view(np.uint32))


def test_error_against_float64_is_the_quantization_error():
    """|A'B' - AB| <= |dA| |B| + |A| |dB| + |dA| |dB| elementwise (dA = A' - A, |dA| <= 2^(ea-1)), plus
    float32 rounding of the chunk sums (at most K/31 + 1 roundings of 2^-24 relative each)."""
    a, b = _data(1)
    qa, qb = DFP.from_float(a), DFP.from_float(b)
    da, db = qa.dequantize().astype(np.float64), qb.dequantize().astype(np.float64)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    ea, eb = 2.0 ** (int(qa.exponent[0]) - 1), 2.0 ** (int(qb.exponent[0]) - 1)
    quant = ea * np.abs(b).sum(0)[None, :] + eb * np.abs(a).sum(1)[:, None] + ea * eb * a.shape[1]
    rounding = (a.shape[1] / 31 + 2) * 2.0**-24 * (np.abs(da) @ np.abs(db))
    err = np.abs(matmul(a, b).astype(np.float64) - exact)
    assert np.all(err <= quant + rounding)
    assert np.abs(matmul(a, b) - exact).max() / np.abs(exact).max() < 1e-3  # DFP16 is accurate to ~2^-13


def test_torch_in_torch_out():
    import torch
    a, b = _data(2)
    got = matmul(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), matmul(a, b))
    mixed = matmul(DFP.from_float(a), torch.from_numpy(b))  # any torch operand -> torch out
    assert isinstance(mixed, torch.Tensor)
    np.testing.assert_array_equal(mixed.numpy(), matmul(a, b))
    assert isinstance(matmul(a.astype(np.float64), b.astype(np.float16)), np.ndarray)


def test_default_chunk_follows_the_operand_formats():
    a, b = _data(3, k=100)
    q2, q1 = DFP.from_float(a), DFP.from_float(b, headroom=1)
    assert default_chunk(q2, DFP.from_float(b)) == 31
    assert default_chunk(q2, q1) == kernel.INT32_MAX // (2**13 * 2**14) == 15
    y = matmul(q2, q1)  # chunk 15: refused by the kernel's check if it were unsafe
    want = kernel.gemm(q2.mantissa, q1.mantissa, int(q2.exponent[0]), int(q1.exponent[0]), chunk=15, impl="numpy")
    np.testing.assert_array_equal(y, want)
    q8 = DFP.from_float(b, bits=8)
    y8 = matmul(q2, q8)  # int8 mantissas widen exactly
    assert default_chunk(q2, q8) == kernel.INT32_MAX // (2**13 * 2**5)
    np.testing.assert_allclose(y8, a @ q8.dequantize(), rtol=0, atol=1e-3 * np.abs(a @ b).max())


def test_explicit_chunk_and_threads():
    a, b = _data(4)
    assert not np.array_equal(matmul(a, b, chunk=1), matmul(a, b))  # another float order
    np.testing.assert_array_equal(matmul(a, b, chunk=7, threads=1), matmul(a, b, chunk=7, threads=2))
    with pytest.raises(ValueError, match="chunk: 32 can overflow int32 .* largest safe chunk for them is 31"):
        matmul(np.ones((2, 64), np.float32) * 0.999999, np.ones((64, 2), np.float32) * 0.999999, chunk=32)


def test_bad_inputs():
    a, b = _data(5)
    with pytest.raises(ValueError, match="does not chain"):
        matmul(a, a)
    with pytest.raises(ValueError, match=r"a: expected a 2-d matrix, got shape \(300,\)"):
        matmul(a[0], b)
    with pytest.raises(ValueError, match="b: expected a per-tensor DFP"):
        matmul(a, DFP.from_float(b, block_size=32))
    with pytest.raises(TypeError, match="a: expected a DFP or a floating-point array, got dtype int64"):
        matmul(np.ones((2, 300), np.int64), b)
    bad = a.copy()
    bad[3, 4] = np.nan
    for x in (bad, bad.astype(np.float64), np.asfortranarray(bad)):  # compiled and numpy quantizers
        with pytest.raises(ValueError, match=r"a: non-finite value nan at index \(3, 4\)"):
            matmul(x, b)
    with pytest.raises(ValueError, match=r"b: non-finite value inf at index \(0, 0\)"):
        matmul(a, np.full_like(b, np.inf))
    with pytest.raises(ValueError, match=r"threads: expected 1\.\.\d+, got 0"):
        matmul(a, b, threads=0)


def test_empty_operands():
    y = matmul(np.zeros((0, 5), np.float32), np.zeros((5, 3), np.float32))
    assert y.shape == (0, 3)
    y = matmul(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(y, np.zeros((2, 3), np.float32))
