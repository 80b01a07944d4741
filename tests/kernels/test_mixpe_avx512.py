"""MixPE's avx512 kernels on both of their paths (VNNI vpdpbusd, and the AVX512BW vpmaddubsw +
vpmaddwd fallback): integer parts bit for bit against the numpy reference (edge values: q = 15
against -128 / 127, where the unsigned x signed operand order and saturation would show), W4A8
bit for bit against the serial and avx2 backends, W4A16 bit for bit against avx2 (same float order
lane for lane), every token-tile remainder (M = 1..17 against the 8-token micro-kernel)."""
import numpy as np
import pytest

from avx512_paths import avx512_path  # noqa: F401  (fixture)
from frugalnn.kernels import available_backends, mixpe, mixpe_ref, use_backend
from test_mixpe_kernel import SHAPES, packed_from, random_integers

F32 = np.float32


@pytest.mark.parametrize("m,k,n", SHAPES + [(8, 96, 16), (9, 160, 33), (17, 128, 17)])
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("edge", [False, True])
def test_integer_part_exact(avx512_path, m, k, n, group, edge):
    rng = np.random.default_rng(m * 11 + k * 5 + n + group)
    q, z, aq, asum = random_integers(rng, m, k, n, group, edge)
    w = packed_from(q, np.ones((n, q.shape[1] // group), F32), z, group, k)
    got = mixpe.w4a8_quantized(aq, asum, np.ones(m, F32), w)
    want = mixpe_ref.group_integers(q, z, aq, asum, group).sum(axis=2)
    np.testing.assert_array_equal(got, want.astype(F32))


def _outputs(backend_name, x, w, bias, **kw):
    with use_backend(backend_name):
        return mixpe.w4a8(x, w, bias, **kw)


@pytest.mark.parametrize("m", list(range(1, 18)) + [64, 65])
def test_w4a8_same_bits_as_serial_and_avx2(avx512_path, m):
    rng = np.random.default_rng(m)
    k, n = 300, 37
    x = rng.standard_normal((m, k)).astype(F32)
    w = mixpe.PackedW4.from_float(rng.standard_normal((n, k)).astype(F32), 64)
    bias = rng.standard_normal(n).astype(F32)
    got = mixpe.w4a8(x, w, bias, threads=2)
    for other in ("serial", "avx2"):
        if other in available_backends():
            want = _outputs(other, x, w, bias, threads=1)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("each", [False, True])
def test_w4a16_same_bits_as_avx2(avx512_path, m, k, n, each):
    rng = np.random.default_rng(k * 3 + n)
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = mixpe.PackedW4.from_float(rng.standard_normal((n, k)).astype(F32), 32)
    got = mixpe.w4a16(x, w, dequant_each=each)
    want = mixpe.w4a16(x, w, dequant_each=each, impl="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))
    with use_backend("avx2"):
        np.testing.assert_array_equal(got.view(np.uint32), mixpe.w4a16(x, w, dequant_each=each).view(np.uint32))
