"""The packing kernel against its numpy reference: bit-exact on odd shapes, every bit width, both backends."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn import _core
from frugalnn.kernels import pack

SHAPES = [(1, 1, 1), (1, 7, 7), (3, 37 * 4, 4), (5, 256, 32), (2, 96, 96), (7, 1000, 8), (4, 33, 3), (1, 4096, 128)]


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n,k,group", SHAPES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_pack_matches_reference(backend, bits, n, k, group, symmetric):
    w = np.random.default_rng(bits * 1000 + k).standard_normal((n, k)).astype(np.float32) * 3
    native = pack.quantize_pack(w, bits, group, symmetric)
    ref = pack.quantize_pack(w, bits, group, symmetric, impl="numpy")
    for a, b in zip(native, ref):
        np.testing.assert_array_equal(a, b)
    out = pack.dequantize_unpack(*native, bits, group)
    np.testing.assert_array_equal(out, pack.dequantize_unpack(*ref, bits, group, impl="numpy"))
    # round trip: within half a step of the group's scale
    scales = np.repeat(native[1], group, axis=1)
    assert np.all(np.abs(out - w) <= scales * 0.5001 + 1e-6)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("k", [1, 5, 8, 31, 32, 33, 64, 100, 257])
def test_pack_unpack_codes(backend, bits, k):
    codes = np.random.default_rng(k).integers(0, 1 << bits, (3, k), dtype=np.uint8)
    packed = pack.pack_codes(codes, bits)
    np.testing.assert_array_equal(packed, pack.pack_codes(codes, bits, impl="numpy"))
    assert packed.shape == (3, (k * bits + 7) // 8)
    np.testing.assert_array_equal(pack.unpack_codes(packed, bits, k), codes)
    np.testing.assert_array_equal(pack.unpack_codes(packed, bits, k, impl="numpy"), codes)


def test_layout_is_lsb_first_bit_stream():
    codes = np.array([[1, 2, 3, 0, 1, 2, 3, 3]], np.uint8)
    # 2-bit codes, code i at bits 2i..2i+1: byte0 = 1 | 2<<2 | 3<<4 | 0<<6 = 0x39, byte1 = 1 | 2<<2 | 3<<4 | 3<<6
    np.testing.assert_array_equal(pack.pack_codes(codes, 2), [[0x39, 0xF9]])


@pytest.mark.parametrize("symmetric", [True, False])
def test_edge_groups(backend, symmetric):
    w = np.zeros((4, 8), np.float32)
    w[1] = 5.0  # constant group
    w[2, :4] = [-0.0, 0.0, 1e-45, -1e-45]  # subnormals
    w[3] = [1.7e38, -1.7e38, 1, 2, 3, 4, 5, 6] if symmetric else np.linspace(-1e30, 1e30, 8)
    for impl in ("native", "numpy"):
        p, s, o = pack.quantize_pack(w, 4, 4, symmetric, impl=impl)
        out = pack.dequantize_unpack(p, s, o, 4, 4, impl=impl)
        assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0], 0)
    if not symmetric:
        np.testing.assert_array_equal(out[1], 5.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_name_the_group(backend, bad):
    w = np.ones((3, 64), np.float32)
    w[2, 40] = bad
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="row 2, group 1"):
            pack.quantize_pack(w, 4, 32, True, impl=impl)


@pytest.mark.parametrize("symmetric,w", [(False, [-3e38, 3e38, 0, 0]),  # max - min overflows
                                         (True, [3.4e38, 0, 0, 0])])  # q * scale would overflow
def test_range_too_wide_for_float32_is_rejected(backend, symmetric, w):
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="row 0, group 0"):
            pack.quantize_pack(np.array([w], np.float32), 4, 4, symmetric, impl=impl)


def test_threads_give_identical_results(backend):
    w = np.random.default_rng(1).standard_normal((257, 320)).astype(np.float32)
    one = pack.quantize_pack(w, 3, 32, False, threads=1)
    many = pack.quantize_pack(w, 3, 32, False, threads=7)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


@given(
    w=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 12).map(lambda g: g * 4)),
                 elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=True)),
    bits=st.integers(1, 8),
    symmetric=st.booleans(),
    group=st.sampled_from([1, 2, 4]),
)
def test_property_native_equals_reference(w, bits, symmetric, group):
    for b in ("serial", "avx2") if _core.cpu_supports_avx2() else ("serial",):
        from frugalnn.kernels import use_backend

        with use_backend(b):
            native = pack.quantize_pack(w, bits, group, symmetric)
        ref = pack.quantize_pack(w, bits, group, symmetric, impl="numpy")
        for x, y in zip(native, ref):
            np.testing.assert_array_equal(x, y)
