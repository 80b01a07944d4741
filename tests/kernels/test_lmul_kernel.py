"""The L-Mul kernels against their numpy reference: bit-exact on odd shapes, every mantissa width,
both rounding modes, edge values and both backends (results compared as uint32 bit patterns)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn import _core
from frugalnn.kernels import available_backends, lmul, lmul_ref, use_backend

F32 = np.float32
EDGE = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1.1754942e-38,
                 1.17549435e-38, -1.17549435e-38, 3.4028235e38, -3.4028235e38, 1.5, 1.9999999, 1e-20, 1e20,
                 1e-30, 3e38, 2.0**-126, 2.0**127, 0.9999999], F32)


def bits(x):
    return np.asarray(x, F32).view(np.uint32)


def assert_same_bits(x, y):
    np.testing.assert_array_equal(bits(x), bits(y))


def with_edges(rng, shape, fraction=0.2):
    x = (rng.standard_normal(shape) * np.exp(rng.uniform(-4, 4, shape))).astype(F32)
    mask = rng.random(shape) < fraction
    x[mask] = rng.choice(EDGE, mask.sum())
    return x


@pytest.mark.parametrize("nearest", [False, True])
def test_elementwise_every_width_matches_reference(backend, nearest):
    rng = np.random.default_rng(1)
    a, b = with_edges(rng, 1003), with_edges(rng, 1003)
    pairs_a, pairs_b = np.repeat(EDGE, EDGE.size), np.tile(EDGE, EDGE.size)  # every edge pair
    a, b = np.concatenate([a, pairs_a]), np.concatenate([b, pairs_b])
    for m in range(1, 24):
        for offset in {lmul_ref.paper_offset(m), 0, 1, 7, 23}:
            assert_same_bits(lmul.elementwise(a, b, m, nearest, offset),
                             lmul.elementwise(a, b, m, nearest, offset, impl="numpy"))


def test_defined_special_values():
    def one(x, y, m=4, offset=3):
        return lmul.elementwise(np.array([x], F32), np.array([y], F32), m, False, offset)[0]

    assert one(1.0, 1.0) == 1.0 + 2.0**-3          # 1 * 1 keeps only the 2^-l term
    assert bits(one(0.0, -3.0)) == bits(-0.0)         # zero in, signed zero out
    assert bits(one(-0.0, -3.0)) == bits(0.0)
    assert bits(one(1e-45, 5.0)) == bits(0.0)         # subnormals are zero
    assert bits(one(np.inf, 0.0)) == 0x7FC00000       # 0 * inf -> canonical NaN
    assert bits(one(-np.nan, 2.0)) == 0x7FC00000      # NaN in -> canonical NaN (positive)
    assert one(np.inf, -2.0) == -np.inf
    assert one(3e38, 3e38) == np.inf                  # exponent overflow -> inf
    assert one(-3e38, 3e38) == -np.inf
    assert bits(one(1e-30, -1e-30)) == bits(-0.0)     # exponent underflow -> signed zero
    assert one(2.0**-100, 2.0**-26) == 2.0**-126 * (1 + 2.0**-3)  # smallest normal binade survives


def test_matches_the_papers_formula():
    """Truncated operands: (1 + s) 2^(xe+ye) with s = xm + ym + 2^-l while s < 1; a mantissa sum past 1
    (or past 2, when the 2^-l term tops up two large mantissas) carries into the exponent, leaving s - c."""
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0.1, 100, 5000).astype(F32), rng.uniform(0.1, 100, 5000).astype(F32)
    for m in (1, 3, 4, 7):
        l_ = lmul_ref.paper_offset(m)
        got = lmul.elementwise(x, y, m, False, l_).astype(np.float64)
        (mx, ex), (my, ey) = np.frexp(x.astype(np.float64)), np.frexp(y.astype(np.float64))
        ex, ey = ex - 1, ey - 1  # x = (1 + fx) 2^ex
        fx = np.floor((2 * mx - 1) * 2**m) / 2**m  # truncated m-bit mantissa fractions
        fy = np.floor((2 * my - 1) * 2**m) / 2**m
        s = fx + fy + 2.0**-l_
        carries = np.floor(s)
        want = (1 + s - carries) * 2.0 ** (ex + ey + carries)
        assert (carries == 2).any() or m < 7
        np.testing.assert_array_equal(got, want)


def test_round_to_nearest_ties_to_even():
    # m = 1: 1.25 = 1.01b is a tie between 1.0 and 1.5 -> 1.0 (even); 1.75 -> 2.0 (carry into the exponent).
    one = np.ones(4, F32)
    got = lmul.elementwise(np.array([1.25, 1.75, 1.3, 1.2], F32), one, 1, True, 1)
    # times 1 with l = 1: s = xm + 0.5; 1.3 -> 1.5 gives s = 1, a carry: 2^1 * (1 + 0)
    np.testing.assert_array_equal(got, np.array([1.5, 3.0, 2.0, 1.5], F32))


SHAPES = [(1, 1, 1, 1), (1, 7, 13, 5), (2, 6, 256, 16), (1, 13, 300, 33), (3, 1, 70, 200), (1, 50, 5, 3),
          (2, 17, 513, 40), (1, 97, 64, 300), (2, 1, 300, 517), (1, 4, 40, 1000)]


@pytest.mark.parametrize("batch,m,k,n", SHAPES)
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_matches_reference(backend, batch, m, k, n, transpose_b):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((batch, m, k)).astype(F32)
    b = rng.standard_normal((batch, n, k) if transpose_b else (batch, k, n)).astype(F32)
    a[:, ::3, ::5] = 0.0  # zeros on both sides exercise the masked fast kernels
    b[..., ::7] = -0.0
    for mbits, nearest in ((4, False), (3, True), (7, False), (1, True)):
        off = lmul_ref.paper_offset(mbits)
        want = lmul.matmul(a, b, mbits, nearest, off, transpose_b=transpose_b, impl="numpy")
        assert_same_bits(lmul.matmul(a, b, mbits, nearest, off, transpose_b=transpose_b), want)
        assert_same_bits(lmul.matmul(a, b, mbits, nearest, off, transpose_b=transpose_b, force_general=True), want)


@pytest.mark.parametrize("rows", [14, 6])  # 6 rows or fewer: B is prepared strip by strip, right before use
@pytest.mark.parametrize("case", ["edges", "overflow", "underflow", "wide", "all_zero", "signed_zero_sums"])
def test_matmul_edge_values(backend, case, rows):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1, rows, 300)).astype(F32)
    b = rng.standard_normal((1, 300, 37)).astype(F32)
    if case == "edges":
        a, b = with_edges(rng, a.shape, 0.05), with_edges(rng, b.shape, 0.05)
    elif case == "overflow":
        a[0, 2, 7], b[0, 7, 3] = 3e38, 1e10  # one product overflows to inf
        a[0, 5, :] = 1e30
        b[0, :, 9] = -1e30
    elif case == "underflow":
        a[0, 3, :] = 1e-30
        b[0, 11, :] = 1e-20
    elif case == "wide":  # magnitudes spanning the whole range: blocks fall back to the general kernel
        a *= np.exp(rng.uniform(-80, 80, a.shape)).astype(F32)
        b *= np.exp(rng.uniform(-80, 80, b.shape)).astype(F32)
    elif case == "all_zero":
        a[0, :6] = 0.0
        b[0, :, :16] = -0.0
    elif case == "signed_zero_sums":  # sums of signed zeros keep IEEE's sign rules
        a = np.where(rng.random(a.shape) < 0.5, F32(0.0), F32(-0.0))
        a[0, 0, :] = -0.0
    for mbits, nearest in ((4, False), (2, True), (23, False)):
        off = lmul_ref.paper_offset(mbits)
        want = lmul.matmul(a, b, mbits, nearest, off, impl="numpy")
        assert_same_bits(lmul.matmul(a, b, mbits, nearest, off), want)
        assert_same_bits(lmul.matmul(a, b, mbits, nearest, off, force_general=True), want)
    if case == "signed_zero_sums":
        assert bits(want[0, 0, 0]) in (bits(0.0), bits(-0.0))


def test_matmul_threads_do_not_change_bits(backend):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 101, 300)).astype(F32), rng.standard_normal((2, 300, 270)).astype(F32)
    one = lmul.matmul(a, b, 4, False, 3, threads=1)
    assert_same_bits(lmul.matmul(a, b, 4, False, 3, threads=3), one)
    assert_same_bits(lmul.matmul(a, b, 4, False, 3, threads=16), one)


@pytest.mark.parametrize("batch,m,k,n", [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)])
def test_matmul_empty(backend, batch, m, k, n):
    a, b = np.ones((batch, m, k), F32), np.ones((batch, k, n), F32)
    out = lmul.matmul(a, b, 4, False, 3)
    assert out.shape == (batch, m, n)
    assert_same_bits(out, lmul.matmul(a, b, 4, False, 3, impl="numpy"))
    assert np.all(bits(out) == 0)  # K = 0: +0.0, as torch.matmul


def test_bad_arguments_raise():
    a, b = np.ones((1, 2, 3), F32), np.ones((1, 3, 4), F32)
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="mantissa_bits: expected 1..23, got 0"):
            lmul.matmul(a, b, 0, False, 1, impl=impl)
        with pytest.raises(ValueError, match="offset: expected 0..23, got 24"):
            lmul.matmul(a, b, 4, False, 24, impl=impl)
    with pytest.raises(ValueError, match="does not chain"):
        lmul.matmul(a, np.ones((1, 4, 4), F32), 4, False, 3)
    with pytest.raises(TypeError, match="float32"):
        lmul.matmul(a.astype(np.float64), b, 4, False, 3)
    with pytest.raises(TypeError, match="dtype"):  # the binding itself, bypassing the wrapper
        _core.lmul.matmul(a.astype(np.int32), b, 4, False, 3, False, np.empty((1, 2, 4), F32))
    with pytest.raises(ValueError, match="out"):
        _core.lmul.matmul(a, b, 4, False, 3, False, np.empty((1, 2, 5), F32))
    with pytest.raises(ValueError, match="share memory"):
        _core.lmul.elementwise(a.reshape(-1), a.reshape(-1), 4, False, 3, a.reshape(-1))


@given(a=hnp.arrays(F32, st.tuples(st.integers(1, 9), st.integers(1, 40)),
                    elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)),
       n=st.integers(1, 20), m=st.integers(1, 23), nearest=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matmul_native_equals_reference(a, n, m, nearest, seed):
    rng = np.random.default_rng(seed)
    b = with_edges(rng, (a.shape[1], n), 0.1)
    off = lmul_ref.paper_offset(m)
    want = lmul.matmul(a[None], b[None], m, nearest, off, impl="numpy")
    for be in available_backends():
        with use_backend(be):
            assert_same_bits(lmul.matmul(a[None], b[None], m, nearest, off), want)
