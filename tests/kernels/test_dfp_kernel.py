"""The DFP16 GEMM against its numpy reference: bit-exact on odd shapes, every chunk length, both
layouts of B, with and without bias, on both backends (outputs compared as uint32 bit patterns);
the overflow bound with all-maximum operands; edge sizes and malformed calls."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

from frugalnn import _core
from frugalnn.formats.dfp import DFP
from frugalnn.kernels import dfp, dfp_ref

I16, F32 = np.int16, np.float32


def bits(x):
    return np.asarray(x, F32).view(np.uint32)


def assert_same_bits(x, y):
    np.testing.assert_array_equal(bits(x), bits(y))


def operands(rng, m, k, n, chunk, transpose_b=False, lim=None):
    """Random mantissas as large as `chunk` allows without overflow (the kernel refuses more)."""
    if lim is None:
        lim = min(32767, int(np.sqrt(dfp.INT32_MAX / max(1, min(chunk, max(k, 1))))))
    a = rng.integers(-lim, lim + 1, (m, k)).astype(I16)
    b = rng.integers(-lim, lim + 1, (n, k) if transpose_b else (k, n)).astype(I16)
    return a, b


def both(a, b, ea=-26, eb=0, **kw):
    return dfp.gemm(a, b, ea, eb, **kw), dfp.gemm(a, b, ea, eb, impl="numpy", **kw)


SIZES = (1, 3, 17, 63, 65, 257)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 17, 63), (65, 257, 3), (17, 65, 257), (257, 63, 17),
                                   (63, 3, 65), (1, 257, 1), (6, 32, 16), (7, 33, 17),
                                   (96, 130, 33), (97, 130, 33), (97, 130, 300),  # the 3 packing regimes
                                   (20, 1200, 300), (100, 2100, 20)])  # several K panels (driver.h)
@pytest.mark.parametrize("transpose_b", [False, True])
def test_odd_shapes_bit_exact(backend, m, k, n, transpose_b):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    for chunk in sorted({1, 2, 5, 31, 32, k, k + 7}):
        a, b = operands(rng, m, k, n, chunk, transpose_b)
        bias = rng.standard_normal(n).astype(F32)
        got, want = both(a, b, chunk=chunk, transpose_b=transpose_b, bias=bias)
        assert_same_bits(got, want)
    got, want = both(a, b, ea=3, eb=-40, transpose_b=transpose_b)  # default chunk, no bias
    assert_same_bits(got, want)


@given(m=st.integers(0, 20), k=st.integers(0, 80), n=st.integers(0, 40), chunk=st.integers(1, 90),
       transpose_b=st.booleans(), seed=st.integers(0, 2**32 - 1), e=st.integers(-160, 160))
def test_random_shapes_bit_exact(m, k, n, chunk, transpose_b, seed, e):
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, k, n, chunk, transpose_b)
    bias = rng.standard_normal(n).astype(F32) if seed % 2 else None
    want = dfp.gemm(a, b, e, -30, chunk, bias=bias, transpose_b=transpose_b, impl="numpy")
    for backend in _core_backends():
        with backend:
            assert_same_bits(dfp.gemm(a, b, e, -30, chunk, bias=bias, transpose_b=transpose_b), want)


def _core_backends():
    from frugalnn.kernels import available_backends, use_backend
    return [use_backend(name) for name in available_backends()]


def test_reference_is_the_documented_formula():
    """Independent of dfp_ref: one chunk is float32(exact sum) * 2^s; several chunks are the float32
    running sum of float32(exact chunk sums), in order."""
    rng = np.random.default_rng(3)
    a, b = operands(rng, 9, 100, 11, 100, lim=4000)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    got = dfp.gemm(a, b, -5, 2, chunk=100)
    np.testing.assert_array_equal(got, exact.astype(np.float64).astype(F32) * F32(2.0**-3))
    acc = np.zeros((9, 11), F32)
    for k0 in (0, 30, 60, 90):
        s = a[:, k0:k0 + 30].astype(np.int64) @ b[k0:k0 + 30].astype(np.int64)
        acc = acc + s.astype(np.float64).astype(F32)
    assert_same_bits(dfp.gemm(a, b, 0, 0, chunk=30), acc)


@pytest.mark.parametrize("s", [-400, -260, -252, -200, -160, -149, -140, -127, -126, -60, 0, 60, 100, 127, 128, 200])
def test_scaling_is_correctly_rounded_ldexp(backend, s):
    rng = np.random.default_rng(s + 1000)
    a, b = operands(rng, 5, 40, 19, 40)
    acc = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float64).astype(F32)
    with np.errstate(over="ignore"):
        want = np.ldexp(acc, s).astype(F32)  # float32 ldexp: one correctly rounded step, subnormals included
    ea = s // 2
    assert_same_bits(dfp.gemm(a, b, ea, s - ea, chunk=40), want)


@pytest.mark.parametrize("bits_,headroom,bound,chunk", [(16, 2, 8192, 31), (16, 1, 16384, 7), (16, 0, 32767, 2),
                                                       (16, 3, 4096, 127), (8, 2, 32, 2097151), (8, 0, 127, 133144)])
def test_max_safe_chunk_derivation(bits_, headroom, bound, chunk):
    assert dfp.mantissa_bound(bits_, headroom) == bound
    assert dfp.max_safe_chunk(bits_, headroom) == chunk
    assert chunk * bound**2 <= 2**31 - 1 < (chunk + 1) * bound**2
    # the bound is reached: from_float rounds the largest value up to exactly 2^(bits-1-headroom)
    q = DFP.from_float(np.array([1 - 2.0**-20, -0.25], np.float32), bits=bits_, headroom=headroom)
    assert int(np.abs(q.mantissa.astype(np.int32)).max()) == bound
    # and never beyond it, whatever the data
    rng = np.random.default_rng(bits_ + headroom)
    for rounding in ("nearest", "stochastic"):
        x = rng.standard_normal(4096) * np.exp(rng.uniform(-20, 20))
        q = DFP.from_float(x, bits=bits_, headroom=headroom, rounding=rounding, rng=1)
        assert np.abs(q.mantissa.astype(np.int32)).max() <= bound


@pytest.mark.parametrize("bits_,headroom", [(16, 2), (16, 1), (16, 0), (16, 3), (8, 0)])
def test_all_maximum_operands_bound_exact_and_bound_plus_one_overflows(backend, bits_, headroom):
    bound, chunk = dfp.mantissa_bound(bits_, headroom), dfp.max_safe_chunk(bits_, headroom)
    k = chunk + 1
    a, b = np.full((2, k), bound, I16), np.full((k, 3), bound, I16)
    exact = k * bound**2
    got = dfp.gemm(a, b, 0, 0, chunk=chunk)  # chunks of `chunk` and 1: both sums fit int32
    assert np.all(got == np.float32(chunk * bound**2) + np.float32(bound**2))
    assert abs(float(got[0, 0]) - exact) <= 2.0**-23 * exact  # exact up to float32 rounding of the result
    with pytest.raises(ValueError, match=f"chunk: {k} can overflow int32 .* largest safe chunk for them is {chunk}"):
        dfp.gemm(a, b, 0, 0, chunk=k)
    # a plain int32 accumulation of the k products wraps...
    assert np.cumsum(np.full(k, bound**2, np.int64)).astype(np.int32)[-1] != exact
    # ...and so does the kernel's when asked to run the unsafe chunk
    wrapped = dfp.gemm(a, b, 0, 0, chunk=k, allow_overflow=True)
    assert np.all(wrapped == np.float32(np.int64(exact).astype(np.uint32).view(np.int32)))
    assert_same_bits(wrapped, dfp.gemm(a, b, 0, 0, chunk=k, allow_overflow=True, impl="numpy"))


def test_wraparound_matches_reference_on_full_range(backend):
    """Unsafe chunks with allow_overflow: int32 wrap-around, identical in every implementation,
    including -32768 * -32768 pairs (the one case where vpmaddwd itself wraps)."""
    rng = np.random.default_rng(7)
    a = rng.integers(-32768, 32768, (13, 300)).astype(I16)
    b = rng.integers(-32768, 32768, (300, 21)).astype(I16)
    a[0, :] = -32768
    b[:, 0] = -32768
    for chunk in (3, 64, 300):
        got, want = both(a, b, chunk=chunk, allow_overflow=True)
        assert_same_bits(got, want)


def test_threads_do_not_change_bits(backend):
    rng = np.random.default_rng(5)
    a, b = operands(rng, 200, 300, 270, 31)
    ref = dfp.gemm(a, b, -20, -5, threads=1)
    for t in (2, 3, 8):
        assert_same_bits(dfp.gemm(a, b, -20, -5, threads=t), ref)


@pytest.mark.parametrize("m,k,n", [(0, 5, 4), (4, 5, 0), (0, 0, 0), (3, 0, 4), (1, 0, 1)])
def test_zero_sizes(backend, m, k, n):
    a, b = np.zeros((m, k), I16), np.ones((k, n), I16)
    bias = np.arange(n, dtype=F32) - 1.5
    for bi in (None, bias):
        got, want = both(a, b, bias=bi)
        assert got.shape == (m, n)
        assert_same_bits(got, want)
        if k == 0:
            assert_same_bits(got, np.zeros((m, n), F32) + (0 if bi is None else bi))


def test_huge_empty_shapes_do_not_allocate(backend):
    base = np.zeros(1, I16)
    a = as_strided(base, shape=(2**40, 0), strides=(0, 2))  # zero elements: no memory behind it
    b = np.zeros((0, 0), I16)
    assert dfp.gemm(a, b, 0, 0).shape == (2**40, 0)
    with pytest.raises((ValueError, MemoryError)):
        dfp.gemm(as_strided(base, shape=(2**40, 0), strides=(0, 2)), as_strided(base, shape=(0, 2**40), strides=(0, 0)), 0, 0)


def test_huge_strided_views_rejected_not_read():
    base = np.zeros(1, I16)
    a = as_strided(base, shape=(2**30, 2**30), strides=(0, 0))  # 2^61 bytes if it were real
    with pytest.raises(TypeError, match="a: expected a C-contiguous array"):
        dfp.gemm(a, np.zeros((2**30, 1), I16), 0, 0)
    with pytest.raises(TypeError, match="a: expected a C-contiguous array"):
        _core.dfp.gemm(a, np.zeros((1, 1), I16), 0, 0, 31, False, None, np.zeros((2**30, 1), F32))
    out = as_strided(np.zeros(1, F32), shape=(4, 4), strides=(0, 4))
    with pytest.raises(TypeError, match="out: expected a C-contiguous array"):
        _core.dfp.gemm(np.zeros((4, 2), I16), np.zeros((2, 4), I16), 0, 0, 31, False, None, out)


def test_non_finite_bias_and_extreme_exponents_propagate(backend):
    a, b = np.ones((2, 3), I16), np.ones((3, 4), I16)
    bias = np.array([np.inf, -np.inf, np.nan, 1.0], F32)
    got, want = both(a, b, bias=bias)
    assert_same_bits(got, want)
    assert np.isposinf(got[0, 0]) and np.isneginf(got[0, 1]) and np.isnan(got[0, 2]) and got[0, 3] == 1.0 + 3 * 2.0**-26
    assert np.all(np.isposinf(dfp.gemm(a, b, 200, 100)))
    assert np.all(dfp.gemm(a, b, -200, -100) == 0)


def test_bad_arguments():
    a, b = np.ones((4, 6), I16), np.ones((6, 5), I16)
    with pytest.raises(TypeError, match="a: expected dtype int16, got int32"):
        dfp.gemm(a.astype(np.int32), b, 0, 0)
    with pytest.raises(TypeError, match="b: expected dtype int16, got float32"):
        dfp.gemm(a, b.astype(F32), 0, 0)
    with pytest.raises(TypeError, match="a: expected a C-contiguous array"):
        dfp.gemm(np.ones((4, 12), I16)[:, ::2], b, 0, 0)
    with pytest.raises(TypeError, match="a: expected a numpy array or torch tensor, got list"):
        dfp.gemm([[1]], b, 0, 0)
    with pytest.raises(ValueError, match=r"b: shape \(5, 6\) \(transpose_b=False\) does not chain .* expected K = 6, got 5"):
        dfp.gemm(a, b.T.copy(), 0, 0)
    with pytest.raises(ValueError, match=r"a: expected a 2-d array, got shape \(6,\)"):
        dfp.gemm(a[0], b, 0, 0)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"chunk: expected >= 1, got {bad}"):
            dfp.gemm(a, b, 0, 0, chunk=bad)
    with pytest.raises(TypeError, match="chunk: expected an int"):
        dfp.gemm(a, b, 0, 0, chunk=2.0)
    with pytest.raises(TypeError, match="ea: expected an int"):
        dfp.gemm(a, b, 1.5, 0)
    with pytest.raises(ValueError, match=r"bias: expected shape \(5,\), got \(6,\)"):
        dfp.gemm(a, b, 0, 0, bias=np.zeros(6, F32))
    with pytest.raises(TypeError, match="bias: expected dtype float32, got float64"):
        dfp.gemm(a, b, 0, 0, bias=np.zeros(5))
    with pytest.raises(ValueError, match=r"out: expected shape \(4, 5\), got \(5, 4\)"):
        dfp.gemm(a, b, 0, 0, out=np.zeros((5, 4), F32))
    with pytest.raises(ValueError, match=r"threads: expected 1\.\.\d+, got 0"):
        dfp.gemm(a, b, 0, 0, threads=0)
    with pytest.raises(ValueError, match="impl: expected one of"):
        dfp.gemm(a, b, 0, 0, impl="fast")
    # the binding itself (no wrapper in front)
    out = np.zeros((4, 5), F32)
    with pytest.raises(ValueError, match="chunk: expected >= 1, got 0"):
        _core.dfp.gemm(a, b, 0, 0, 0, False, None, out)
    with pytest.raises(ValueError, match="threads: expected a positive count"):
        _core.dfp.gemm(a, b, 0, 0, 31, False, None, out, 0)
    with pytest.raises(ValueError, match="ea \\+ eb overflows"):
        _core.dfp.gemm(a, b, 2**62, 2**62, 31, False, None, out)
    with pytest.raises(ValueError, match="b: expected size 6 on axis 1"):
        _core.dfp.gemm(a, b, 0, 0, 31, True, None, out)
    with pytest.raises(TypeError, match="out: expected dtype float32, got float64"):
        _core.dfp.gemm(a, b, 0, 0, 31, False, None, out.astype(np.float64))


def test_overlapping_output_rejected_read_only_input_accepted():
    buf = np.zeros(64, F32)
    a = buf.view(I16)[:24].reshape(4, 6)
    with pytest.raises(ValueError, match="a and out share memory"):
        dfp.gemm(a, np.ones((6, 5), I16), 0, 0, out=buf[:20].reshape(4, 5))
    a = np.ones((4, 6), I16)
    a.setflags(write=False)
    assert dfp.gemm(a, np.ones((6, 5), I16), 0, 0)[0, 0] == 6
    out = np.zeros((4, 5), F32)
    out.setflags(write=False)
    with pytest.raises(TypeError):
        _core.dfp.gemm(a, np.ones((6, 5), I16), 0, 0, 31, False, None, out)


def test_torch_in_torch_out_zero_copy():
    import torch
    a = torch.randint(-100, 100, (5, 7), dtype=torch.int16)
    b = torch.randint(-100, 100, (7, 3), dtype=torch.int16)
    y = dfp.gemm(a, b, -2, 0)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), (a.numpy().astype(np.int64) @ b.numpy()).astype(F32) / 4)
    out = torch.zeros(5, 3)
    assert dfp.gemm(a, b, 0, 0, out=out) is out and out.abs().sum() > 0  # written in place
    with pytest.raises(TypeError, match="a: expected a C-contiguous array"):
        dfp.gemm(a.t(), b, 0, 0)
    with pytest.raises(TypeError, match="b: expected dtype int16, got int32"):
        dfp.gemm(a, b.int(), 0, 0)


def test_safe_chunk_binding_matches_python():
    for ma, mb in [(8192, 8192), (32768, 32768), (1, 1), (0, 5), (300, 7)]:
        assert _core.dfp.safe_chunk(ma, mb) == dfp_ref.safe_chunk(ma, mb)


# ---- quantize: the compiled twin of DFP.from_float (per tensor, nearest) ----

EDGE = np.array([0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 1.17549435e-38, 3.4028235e38, -3.4028235e38, 1.0,
                 -1.0, 0.5, 1.5, 2.5, -2.5, 1e-30, 1e30, 0.9999999, 65504.0], F32)


def assert_same_dfp(q, r):
    assert q.bits == r.bits and q.headroom == r.headroom and q.block_size is None
    np.testing.assert_array_equal(q.exponent, r.exponent)
    assert q.mantissa.dtype == r.mantissa.dtype and q.mantissa.shape == r.mantissa.shape
    np.testing.assert_array_equal(q.mantissa, r.mantissa)


def _scaled(rng, n, log_span):
    return (rng.standard_normal(n) * np.exp(rng.uniform(-log_span, log_span, n))).astype(F32)


@pytest.mark.parametrize("bits_,headroom", [(16, 2), (16, 0), (16, 1), (16, 14), (8, 0), (8, 2), (8, 6)])
def test_quantize_matches_from_float(backend, bits_, headroom):
    rng = np.random.default_rng(bits_ * 100 + headroom)
    cases = [_scaled(rng, n, 30) for n in (0, 1, 15, 17, 1000, 70001)]
    cases += [EDGE, EDGE[:2], np.full(33, 1e-45, F32), np.full(9, -3.4028235e38, F32), np.zeros((3, 0), F32),
              _scaled(rng, (7, 13, 5), 80), np.abs(_scaled(rng, 100, 2)) * np.float32(2.0**-140)]
    for x in cases:
        assert_same_dfp(dfp.quantize(x, bits_, headroom), DFP.from_float(x, bits_, headroom=headroom))


def test_quantize_rounds_ties_to_even(backend):
    # max 8191.x fixes e = 0 at headroom 2, so x itself is the scaled value
    x = np.array([8191.25, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 1000.5, -8190.5], F32)
    q = dfp.quantize(x)
    assert q.exponent[0] == 0
    np.testing.assert_array_equal(q.mantissa, [8191, 0, 2, 2, 0, -2, -2, 4, 1000, -8190])
    assert_same_dfp(q, DFP.from_float(x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_non_finite_names_the_index(backend, bad):
    x = np.ones((4, 50000), F32)
    x[2, 31234] = bad
    x[3, 7] = bad
    with pytest.raises(ValueError, match=rf"x: non-finite value {bad} at index \(2, 31234\); DFP has no inf/NaN"):
        dfp.quantize(x)


def test_quantize_threads_torch_and_bad_arguments():
    import torch
    x = _scaled(np.random.default_rng(9), 300001, 5)
    ref = dfp.quantize(x, threads=1)
    assert_same_dfp(dfp.quantize(x, threads=2), ref)
    assert_same_dfp(dfp.quantize(torch.from_numpy(x)), ref)
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        dfp.quantize(x.astype(np.float64))
    with pytest.raises(TypeError, match="x: expected a C-contiguous array"):
        dfp.quantize(x[::2])
    with pytest.raises(ValueError, match="bits: expected 16 or 8, got 12"):
        dfp.quantize(x, bits=12)
    with pytest.raises(ValueError, match="headroom: expected 0..14, got 15"):
        dfp.quantize(x, headroom=15)
    with pytest.raises(ValueError, match="headroom: expected 0..6, got -1"):
        dfp.quantize(x, bits=8, headroom=-1)
    m = np.zeros(5, I16)
    with pytest.raises(ValueError, match=r"m: expected the shape of x \(4,\), got \(5,\)"):
        _core.dfp.quantize(np.zeros(4, F32), 16, 2, m)
    with pytest.raises(TypeError, match="m: expected dtype int8, got int16"):
        _core.dfp.quantize(np.zeros(5, F32), 8, 2, m)
    with pytest.raises(ValueError, match="x and m share memory"):
        buf = np.zeros(8, F32)
        _core.dfp.quantize(buf[:4], 16, 2, buf.view(I16)[:4])


def test_large_outputs_same_bits_streamed_or_not(backend):
    """Outputs of 16 MiB and more are written with streaming stores when 32-byte aligned (driver.h)."""
    rng = np.random.default_rng(11)
    a, b = operands(rng, 301, 35, 14000, 31)
    bias = rng.standard_normal(14000).astype(F32)
    want = dfp.gemm(a, b, -3, -4, bias=bias, impl="numpy")
    assert_same_bits(dfp.gemm(a, b, -3, -4, bias=bias, threads=2), want)  # aligned: streamed
    buf = np.empty(301 * 14000 + 1, F32)
    misaligned = buf[1:].reshape(301, 14000) if buf.ctypes.data % 32 == 0 else buf[:-1].reshape(301, 14000)
    assert misaligned.ctypes.data % 32 != 0
    assert_same_bits(dfp.gemm(a, b, -3, -4, bias=bias, out=misaligned), want)  # plain stores


def test_chunk_one_is_always_safe(backend):
    """One product is at most 2^30, so chunk = 1 needs no check even for -32768 * -32768."""
    a, b = np.full((3, 40), -32768, I16), np.full((40, 5), -32768, I16)
    got = dfp.gemm(a, b, 0, 0, chunk=1)
    assert np.all(got == np.float32(40 * 2.0**30))
    with pytest.raises(ValueError, match="chunk: 2 can overflow int32 .* largest safe chunk for them is 1"):
        dfp.gemm(a, b, 0, 0, chunk=2)
