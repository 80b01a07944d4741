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


# ---- issue 19 --------------------------------------------------------------------------------------

from frugalnn import _core  # noqa: E402


@pytest.mark.parametrize("units", [1, 2, 3, 4])
@pytest.mark.parametrize("cols", [1, 2, 3, 4])
def test_every_register_block_writes_every_row(backend, units, cols):
    # (units, cols) outside the tuner's list (units=3, or units=2 with cols=3, ...) ran the block's
    # first unit only and left the other rows unwritten
    rng = np.random.default_rng(units * 10 + cols)
    m, k, g, bits = 150, 64, 32, 3
    _, packed, ws, zt = _weights(rng, m, k, g, bits)
    x = rng.standard_normal((5, k)).astype(np.float32)
    ref = lut.matmul(x, packed, ws, zt, m, bits, g, True, impl="numpy")
    out = np.full((5, m), np.nan, np.float32)  # np.empty may hold the very answer: NaN marks a miss
    _core.lut.matmul(x, packed, ws, zt, m, bits, g, True, out, 2, units, cols, 3, 0)
    np.testing.assert_array_equal(out, ref)


def test_one_group_longer_than_int32_sums(backend):
    # K/4 (2^b - 1) 127 > 2^31 wrapped the int32 sum: the reproducer returned -6200.5, not
    # 524288 (8-bit, K = 2^19). Such groups now carry the sum in int64 (csrc/lut/layout.h); the
    # 4-bit and ternary thresholds (K of 4.5M and 22.5M) take the same code, at 100s of MB.
    from frugalnn.tmac import LUTWeight, matmul

    k = 2**19
    w = LUTWeight.from_float(np.ones((32, k), np.float32), 8, group_size=k)
    np.testing.assert_array_equal(matmul(np.ones((1, k), np.float32), w), k)


def test_groups_beyond_the_int32_table_sum_are_refused():
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="group_size: 134217728 exceeds the kernel's limit of 2\\^26"):
            lut.layout_sizes(32, 2**27, 2**27, 2) if impl == "numpy" else _core.lut.layout_sizes(32, 2**27, 2**27, 2)


@pytest.mark.parametrize("e", [100, 120, 122, 124])
def test_asymmetric_weights_with_activations_near_two_to_124(backend, e):
    # zs = isum * ts, the group's activation sum, overflowed to inf below the 2^125 cutoff: NaN or
    # inf where the dense result is finite. Products now form (zt * isum) * ts (layout.h).
    rng = np.random.default_rng(e)
    m, k, g, bits = 40, 64, 32, 2
    codes = rng.integers(0, 4, (m, k), dtype=np.uint8)
    packed = lut.transform(codes, bits, g)
    units = 2
    ws = np.full((units, 2, 32), 1e-3, np.float32)
    zt = np.full((units, 2, 32), -2e-3, np.float32)
    x = np.full((2, k), 2.0**e, np.float32)
    x[1, ::3] = -(2.0**e)
    out = lut.matmul(x, packed, ws, zt, m, bits, g, True)
    np.testing.assert_array_equal(out, lut.matmul(x, packed, ws, zt, m, bits, g, True, impl="numpy"))
    dense = ((2 * codes.astype(np.float64) - 3) * 1e-3 - 2e-3) @ x.T.astype(np.float64)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, dense.T, rtol=0.02, atol=0.01 * np.abs(dense).max())


@pytest.mark.parametrize("scale", [1e-38, 1e-42, 3e-37])
def test_tiny_activations(backend, scale):
    # below 2^-121, 127 / maxabs overflowed float32: the AVX2 tables became -128s (results of the
    # wrong sign) and the serial ones relied on a clamp; such groups are now quantized from 2^64 T
    rng = np.random.default_rng(4)
    m, k, g, bits = 40, 64, 32, 2
    codes, packed, ws, zt = _weights(rng, m, k, g, bits)
    x = (rng.standard_normal((3, k)) * scale).astype(np.float32)
    x[2, :] = scale
    out = lut.matmul(x, packed, ws, zt, m, bits, g, False)
    np.testing.assert_array_equal(out, lut.matmul(x, packed, ws, zt, m, bits, g, False, impl="numpy"))
    wd = (2 * codes.astype(np.float64) - 3) * np.repeat(ws.transpose(0, 2, 1).reshape(-1, 2)[:m], g, axis=1)
    dense = x.astype(np.float64) @ wd.T
    big = np.abs(dense) > 1e-3 * np.abs(dense).max()
    assert (np.sign(out[big]) == np.sign(dense[big])).all()
    if scale >= 1e-38:  # normal floats: the usual activation-quantization accuracy
        np.testing.assert_allclose(out, dense, rtol=0.1, atol=0.05 * np.abs(dense).max())


def _best_ms(fn, repeats=7, inner=3):
    import time

    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best * 1e3


def test_special_values_cost_about_a_normal_call(backend):
    # NaN/inf activations went through a per-weight scalar fix-up (code_at for every row and special
    # activation, on one thread): an all-NaN 1536 x 576 GEMV took ~250x the normal call. Now a NaN
    # column is filled at once and inf/huge values are added 32 rows per vector step. Margins are
    # wide (the machine is shared): measured 1.2x for NaN, 1.5x for 1/16 inf, 6.4x for all-inf at
    # one thread, against 470x, 15x, 460x before.
    rng = np.random.default_rng(0)
    m, k, g, bits = 1536, 576, 64, 4
    _, packed, ws, zt = _weights(rng, m, k, g, bits)
    x = rng.standard_normal((1, k)).astype(np.float32)

    def t(xs):
        return _best_ms(lambda: lut.matmul(xs, packed, ws, zt, m, bits, g, True, threads=1))

    normal = t(x)
    some_inf = x.copy()
    some_inf[0, ::16] = np.inf
    ratios = {"nan": t(np.full_like(x, np.nan)) / normal, "inf 1/16": t(some_inf) / normal,
              "all inf": t(np.full_like(x, np.inf)) / normal}
    assert ratios["nan"] < 6 and ratios["inf 1/16"] < 7 and ratios["all inf"] < 60, ratios
