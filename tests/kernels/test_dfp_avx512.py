"""DFP16's avx512 micro-kernel on both of its paths (VNNI vpdpwssd, and the AVX512BW vpmaddwd +
vpaddd fallback): bit for bit against the numpy reference on the odd shapes, every chunk length,
both layouts of B, and int32 wrap-around (allow_overflow, -32768 pairs: the non-saturating vpdpwssd
must wrap exactly like serial.h's modular sums)."""
import numpy as np
import pytest

from avx512_paths import avx512_path  # noqa: F401  (fixture)
from frugalnn.kernels import dfp
from test_dfp_kernel import assert_same_bits, both, operands

I16, F32 = np.int16, np.float32


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 17, 63), (65, 257, 3), (17, 65, 257), (7, 33, 17),
                                   (96, 130, 33), (97, 130, 33), (97, 130, 300), (20, 1200, 300)])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_odd_shapes_bit_exact(avx512_path, m, k, n, transpose_b):
    rng = np.random.default_rng(m * 1000 + k * 10 + n + 1)
    for chunk in sorted({1, 2, 5, 31, k}):
        a, b = operands(rng, m, k, n, chunk, transpose_b)
        bias = rng.standard_normal(n).astype(F32)
        got, want = both(a, b, chunk=chunk, transpose_b=transpose_b, bias=bias)
        assert_same_bits(got, want)


@pytest.mark.parametrize("transpose_b", [False, True])
def test_wraparound_bit_exact(avx512_path, transpose_b):
    rng = np.random.default_rng(9)
    a = rng.integers(-32768, 32768, (14, 301)).astype(I16)
    b = rng.integers(-32768, 32768, (21, 301) if transpose_b else (301, 21)).astype(I16)
    a[0, :] = -32768  # (-32768)^2 + (-32768)^2 = 2^31: the pair sum itself wraps
    if transpose_b:
        b[0, :] = -32768
    else:
        b[:, 0] = -32768
    for chunk in (2, 3, 64, 301):
        got, want = both(a, b, chunk=chunk, transpose_b=transpose_b, allow_overflow=True)
        assert_same_bits(got, want)
    exact = np.int64(301) * 2**30  # row 0 x column 0, one chunk: 301 * 2^30 modulo 2^32, as int32
    got = dfp.gemm(a, b, 0, 0, chunk=301, transpose_b=transpose_b, allow_overflow=True)
    assert got[0, 0] == np.float32(np.int64(exact).astype(np.uint32).view(np.int32))


def test_threads_do_not_change_bits(avx512_path):
    rng = np.random.default_rng(5)
    a, b = operands(rng, 200, 300, 270, 31)
    ref = dfp.gemm(a, b, -20, -5, threads=1)
    for t in (2, 3):
        assert_same_bits(dfp.gemm(a, b, -20, -5, threads=t), ref)
