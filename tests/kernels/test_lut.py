"""LUT kernels against their numpy reference: bit-exact on odd shapes, every bit width, group size,
tile configuration and backend; NaN/inf/huge activations propagate like a dense matmul."""
import numpy as np
import pytest

from frugalnn.kernels import lut

SHAPES = [(1, 4, 4), (3, 12, 12), (37, 24, 12), (64, 64, 32), (33, 128, 4), (70, 192, 64), (5, 256, 256),
          (40, 96, 96)]
TILES = [(1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (1, 3), (1, 4)]


def _weights(rng, m, k, g, bits):
    codes = rng.integers(0, 1 << bits, (m, k), dtype=np.uint8)
    units, groups, _, _ = lut.layout_sizes(m, k, g, bits)
    ws = rng.standard_normal((units, groups, 32)).astype(np.float32)
    zt = rng.standard_normal((units, groups, 32)).astype(np.float32)
    return codes, lut.transform(codes, bits, g), ws, zt


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("m,k,g", SHAPES)
def test_transform_roundtrip_matches_reference(bits, m, k, g):
    codes = np.random.default_rng(bits + k).integers(0, 1 << bits, (m, k), dtype=np.uint8)
    packed = lut.transform(codes, bits, g)
    np.testing.assert_array_equal(packed, lut.transform(codes, bits, g, impl="numpy"))
    np.testing.assert_array_equal(lut.untransform(packed, bits, g, m, k), codes)
    np.testing.assert_array_equal(lut.untransform(packed, bits, g, m, k, impl="numpy"), codes)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("m,k,g", SHAPES)
@pytest.mark.parametrize("has_zero", [False, True])
def test_matmul_matches_reference(backend, bits, m, k, g, has_zero):
    rng = np.random.default_rng(bits * 100 + m + k)
    _, packed, ws, zt = _weights(rng, m, k, g, bits)
    x = rng.standard_normal((5, k)).astype(np.float32) * np.float32(3)
    ref = lut.matmul(x, packed, ws, zt, m, bits, g, has_zero, impl="numpy")
    tiles = TILES if bits <= 4 else TILES[:2]
    for units, cols in tiles:
        out = lut.matmul(x, packed, ws, zt, m, bits, g, has_zero, units=units, cols=cols, col_block=3,
                         prefetch=64 * units)
        np.testing.assert_array_equal(out, ref, err_msg=f"units={units} cols={cols}")
    np.testing.assert_array_equal(lut.matmul(x[:1], packed, ws, zt, m, bits, g, has_zero), ref[:1])


def test_long_groups_widen_int16_without_overflow(backend):
    # 4-bit codes all 15, activations of one sign: every lookup is +-127, the int16 lanes would
    # overflow after 17 steps without the int32 widening (group 4096 = 512 steps).
    m, k, bits = 32, 4096, 4
    codes = np.full((m, k), 15, np.uint8)
    packed = lut.transform(codes, bits, k)
    ws = np.ones((1, 1, 32), np.float32)
    x = np.ones((1, k), np.float32)
    out = lut.matmul(x, packed, ws, ws, m, bits, k, False)
    np.testing.assert_array_equal(out, lut.matmul(x, packed, ws, ws, m, bits, k, False, impl="numpy"))
    np.testing.assert_allclose(out, 15.0 * k, rtol=1e-6)  # (2*15 - 15) * ws(=1) * x summed over K


def test_tables_match_reference_and_mirror(backend):
    rng = np.random.default_rng(3)
    for k, g in ((4, 4), (36, 12), (256, 64), (96, 96)):
        x = (rng.standard_normal(k) * 10).astype(np.float32)
        x[0] = -0.0
        if k > 2:
            x[1] = 1e-42  # subnormal
        t, ts, isum = lut.build_tables(x, g)
        rt, rts, risum = lut.build_tables(x, g, impl="numpy")
        np.testing.assert_array_equal(t, rt)
        np.testing.assert_array_equal(ts, rts)
        np.testing.assert_array_equal(isum, risum)
        tab = t.reshape(-1, 16)
        np.testing.assert_array_equal(tab[:, :8], -tab[:, :7:-1])  # T[j] = -T[15 - j]
        assert np.abs(tab).max() <= 127


def test_zero_activations_give_zero(backend):
    rng = np.random.default_rng(0)
    _, packed, ws, zt = _weights(rng, 40, 64, 32, 3)
    out = lut.matmul(np.zeros((2, 64), np.float32), packed, ws, zt, 40, 3, 32, True)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan, 6e37])
def test_special_activations_propagate_like_dense(backend, special):
    rng = np.random.default_rng(1)
    m, k, g, bits = 45, 64, 32, 2
    codes, packed, ws, zt = _weights(rng, m, k, g, bits)
    x = rng.standard_normal((3, k)).astype(np.float32)
    x[1, 10] = special
    out = lut.matmul(x, packed, ws, zt, m, bits, g, True)
    ref = lut.matmul(x, packed, ws, zt, m, bits, g, True, impl="numpy")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(np.isfinite(out[0]), True)
    w10 = (2 * codes[:, 10].astype(np.float32) - 3) * ws.transpose(0, 2, 1).reshape(-1, 2)[:m, 0] + \
        zt.transpose(0, 2, 1).reshape(-1, 2)[:m, 0]
    with np.errstate(all="ignore"):
        dense = w10 * np.float32(special)
    if np.isnan(special):
        assert np.isnan(out[1]).all()
    elif np.isinf(special):
        np.testing.assert_array_equal(np.isnan(out[1]), np.isnan(dense))
        np.testing.assert_array_equal(np.sign(out[1][np.isinf(out[1])]), np.sign(dense[np.isinf(out[1])]))
    else:  # finite but too large for float32 tables: exact product added back, rest via tables
        w = (2 * codes.astype(np.float64) - 3) * np.repeat(ws.transpose(0, 2, 1).reshape(-1, 2)[:m], g, axis=1) + \
            np.repeat(zt.transpose(0, 2, 1).reshape(-1, 2)[:m], g, axis=1)
        dense = w @ x[1].astype(np.float64)
        fin = np.abs(dense) < 3e38
        np.testing.assert_allclose(out[1][fin], dense[fin], rtol=1e-3)


def test_threads_identical(backend):
    rng = np.random.default_rng(2)
    _, packed, ws, zt = _weights(rng, 300, 128, 64, 2)
    x = rng.standard_normal((7, 128)).astype(np.float32)
    one = lut.matmul(x, packed, ws, zt, 300, 2, 64, True, threads=1)
    np.testing.assert_array_equal(one, lut.matmul(x, packed, ws, zt, 300, 2, 64, True, threads=3))


def test_empty_inputs():
    rng = np.random.default_rng(0)
    _, packed, ws, zt = _weights(rng, 0, 8, 8, 2)
    assert lut.matmul(np.ones((3, 8), np.float32), packed, ws, zt, 0, 2, 8, False).shape == (3, 0)
    _, packed, ws, zt = _weights(rng, 5, 8, 8, 2)
    assert lut.matmul(np.ones((0, 8), np.float32), packed, ws, zt, 5, 2, 8, False).shape == (0, 5)


@pytest.mark.parametrize("impl", ["native", "numpy"])
def test_bad_arguments(impl):
    codes = np.zeros((4, 16), np.uint8)
    with pytest.raises(ValueError, match="bits"):
        lut.transform(codes, 9, 16, impl=impl)
    with pytest.raises(ValueError, match="does not divide K"):
        lut.transform(codes, 2, 12, impl=impl)
    with pytest.raises(ValueError, match="multiple of 4"):
        lut.transform(np.zeros((4, 6), np.uint8), 2, 6, impl=impl)
    with pytest.raises(ValueError, match="does not fit in 2 bits"):
        lut.transform(np.full((4, 16), 4, np.uint8), 2, 16, impl=impl)
    packed = lut.transform(codes, 2, 16)
    ws = np.zeros((1, 1, 32), np.float32)
    with pytest.raises(ValueError, match="ws"):
        lut.matmul(np.ones((1, 16), np.float32), packed, np.zeros((1, 2, 32), np.float32), ws, 4, 2, 16, False,
                   impl=impl)
    with pytest.raises((ValueError, TypeError), match="packed"):
        lut.matmul(np.ones((1, 16), np.float32), packed[:-1], ws, ws, 4, 2, 16, False, impl=impl)
    with pytest.raises(TypeError, match="x"):
        lut.matmul(np.ones((1, 16), np.float64), packed, ws, ws, 4, 2, 16, False, impl=impl)
