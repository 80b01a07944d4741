"""Two-level (K-quant) LUT kernel against its numpy reference: bit-exact on odd shapes, every scale
format, tile configuration and backend, edge scale values; NaN/inf/huge activations as a dense matmul."""
import numpy as np
import pytest

from frugalnn.kernels import lut

# (bits, sub, zero, fmt, has_min): the five K-quant types and two off-type combinations
FORMATS = [(2, 16, 0, "nib", True), (3, 16, 4, "i8", False), (4, 32, 0, "u8", True), (5, 32, 0, "u8", True),
           (6, 16, 32, "i8", False), (4, 16, 0, "u8", False), (8, 64, 100, "u8", True),
           (4, 32, 8, "one", False), (4, 32, 0, "one", True), (5, 32, 16, "one", False),
           (1, 8, 1, "nib", True), (2, 64, 1, "one", False), (3, 64, 0, "u8", True)]
SHAPES = [(1, 256), (33, 512), (70, 768), (32, 256), (5, 256)]


def _kq(rng, m, k, bits, sub, fmt, has_min, g=256, edge=None):
    codes = rng.integers(0, 1 << bits, (m, k), dtype=np.uint8)
    units, groups, _, _ = lut.layout_sizes(m, k, g, bits)
    nsub = g // sub
    if fmt == "one":  # no sub-scale bytes
        sc = np.zeros(0, np.uint8)
    elif fmt == "u8":
        sc = rng.integers(0, 64, (units, groups, nsub, 32), dtype=np.uint8)
    else:
        sc = rng.integers(0, 256, (units, groups, nsub, 32), dtype=np.uint8)
    mn = rng.integers(0, 64, sc.shape, dtype=np.uint8) if fmt == "u8" and has_min else sc
    d = rng.uniform(1e-4, 5e-2, (units, groups, 32)).astype(np.float16).view(np.uint16)
    dmin = rng.uniform(1e-4, 5e-2, (units, groups, 32)).astype(np.float16).view(np.uint16) if has_min else d
    if edge == "max":
        sc[:] = 255 if fmt != "i8" else 0x80  # -128 as a signed byte
        codes[:] = (1 << bits) - 1
        if fmt == "u8" and has_min:
            mn[:] = 255
    if edge == "zero_d":
        d[:, :, ::3] = 0
        if has_min:
            dmin[:, 1::2] = 0
    return codes, lut.transform(codes, bits, g), sc, mn, d, dmin


def _both(x, args, **kw):
    out = lut.matmul_kq(x, *args, **kw)
    ref = lut.matmul_kq(x, *args, impl="numpy")
    return out, ref


@pytest.mark.parametrize("bits,sub,zero,fmt,has_min", FORMATS)
@pytest.mark.parametrize("m,k", SHAPES)
def test_matmul_kq_matches_reference(backend, bits, sub, zero, fmt, has_min, m, k):
    rng = np.random.default_rng(bits * 1000 + m + k)
    _, packed, sc, mn, d, dmin = _kq(rng, m, k, bits, sub, fmt, has_min)
    x = rng.standard_normal((5, k)).astype(np.float32) * np.float32(3)
    args = (packed, sc, mn, d, dmin, m, bits, 256, fmt, sub, zero, has_min)
    ref = lut.matmul_kq(x, *args, impl="numpy")
    for cols in (1, 2, 3, 4):
        np.testing.assert_array_equal(lut.matmul_kq(x, *args, cols=cols, col_block=3), ref, err_msg=f"cols={cols}")
    np.testing.assert_array_equal(lut.matmul_kq(x[:1], *args, threads=2), ref[:1])


@pytest.mark.parametrize("edge", ["max", "zero_d"])
@pytest.mark.parametrize("bits,sub,zero,fmt,has_min", FORMATS)
def test_matmul_kq_edge_scales(backend, edge, bits, sub, zero, fmt, has_min):
    rng = np.random.default_rng(7)
    m, k = 40, 768
    _, packed, sc, mn, d, dmin = _kq(rng, m, k, bits, sub, fmt, has_min, edge=edge)
    # one-signed activations: every lookup +-127, the largest integer sums the format can reach
    x = np.abs(rng.standard_normal((3, k))).astype(np.float32)
    x[1] = 1.0
    out, ref = _both(x, (packed, sc, mn, d, dmin, m, bits, 256, fmt, sub, zero, has_min))
    np.testing.assert_array_equal(out, ref)
    assert np.isfinite(out).all()


def _dense(codes, sc, mn, d, dmin, bits, sub, zero, fmt, has_min, m):
    """The float32 weight the kernel approximates (tables aside)."""
    from frugalnn.kernels.lut_ref import kq_scales

    groups = d.shape[1]
    if fmt == "one":
        sc = mn = np.zeros((d.shape[0], groups, 256 // sub, 32), np.uint8)
    scv, mnv = kq_scales(sc, mn, {"u8": 0, "nib": 1, "i8": 2, "one": 3}[fmt], has_min)
    scv = np.repeat(scv.transpose(0, 3, 1, 2).reshape(-1, groups * sc.shape[2])[:m], sub, axis=1)
    mnv = np.repeat(mnv.transpose(0, 3, 1, 2).reshape(-1, groups * sc.shape[2])[:m], sub, axis=1)
    df = np.repeat(d.view(np.float16).astype(np.float32).transpose(0, 2, 1).reshape(-1, groups)[:m], 256, axis=1)
    dm = np.repeat(dmin.view(np.float16).astype(np.float32).transpose(0, 2, 1).reshape(-1, groups)[:m], 256, axis=1)
    w = (df * scv) * (codes.astype(np.float32) - zero)
    return w - dm * mnv if has_min else w


@pytest.mark.parametrize("bits,sub,zero,fmt,has_min", FORMATS[:5])
def test_matmul_kq_approximates_dense(backend, bits, sub, zero, fmt, has_min):
    rng = np.random.default_rng(3)
    m, k = 64, 1024
    codes, packed, sc, mn, d, dmin = _kq(rng, m, k, bits, sub, fmt, has_min)
    w = _dense(codes, sc, mn, d, dmin, bits, sub, zero, fmt, has_min, m)
    x = rng.standard_normal((4, k)).astype(np.float32)
    out = lut.matmul_kq(x, packed, sc, mn, d, dmin, m, bits, 256, fmt, sub, zero, has_min)
    ref = x @ w.T
    assert np.mean((out - ref) ** 2) / np.mean(ref ** 2) < 1e-3


@pytest.mark.parametrize("special", [np.inf, -np.inf, 6e37, np.nan])
def test_matmul_kq_special_activations(backend, special):
    rng = np.random.default_rng(11)
    m, k, bits, sub = 37, 512, 4, 32
    codes, packed, sc, mn, d, dmin = _kq(rng, m, k, bits, sub, "u8", True)
    x = rng.standard_normal((3, k)).astype(np.float32)
    x[1, 5] = special
    x[2, 300] = special
    x[2, 301] = -special
    args = (packed, sc, mn, d, dmin, m, bits, 256, "u8", sub, 0, True)
    out, ref = _both(x, args)
    np.testing.assert_array_equal(out, ref)
    if np.isfinite(special):  # huge finite: whether a sum overflows depends on the order, as in any matmul
        return
    w = _dense(codes, sc, mn, d, dmin, bits, sub, 0, "u8", True, m)
    with np.errstate(all="ignore"):
        dense = x @ w.T
    np.testing.assert_array_equal(np.isnan(out), np.isnan(dense))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(dense))


@pytest.mark.parametrize("impl", ["native", "numpy"])
def test_matmul_kq_bad_arguments(impl):
    rng = np.random.default_rng(0)
    m, k = 8, 256
    _, packed, sc, mn, d, dmin = _kq(rng, m, k, 4, 32, "u8", True)
    x = np.zeros((1, k), np.float32)
    good = dict(fmt="u8", sub=32, zero=0, has_min=True)

    def call(**kw):
        a = {**good, **kw}
        return lut.matmul_kq(x, packed, sc, mn, d, dmin, m, 4, 256, a["fmt"], a["sub"], a["zero"], a["has_min"],
                             impl=impl)

    with pytest.raises(ValueError, match="sub"):
        call(sub=24)
    with pytest.raises(ValueError, match="zero"):
        call(zero=16)
    with pytest.raises(ValueError, match="sc"):
        call(sub=16)  # sc holds 8 sub-blocks per super-block, not 16
    with pytest.raises(ValueError, match="fmt"):
        call(fmt="u4")
    with pytest.raises(TypeError, match="d"):
        lut.matmul_kq(x, packed, sc, mn, d.view(np.float16), dmin, m, 4, 256, "u8", 32, 0, True, impl=impl)
