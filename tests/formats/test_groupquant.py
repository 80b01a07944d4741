import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn.formats import GroupQuant


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("symmetric", [True, False])
def test_round_trip_within_half_step(backend, bits, symmetric):
    w = np.random.default_rng(bits).standard_normal((48, 256)).astype(np.float32)
    q = GroupQuant.from_float(w, bits, 64, symmetric)
    step = np.repeat(q.scales, 64, axis=1)
    assert np.all(np.abs(q.dequantize() - w) <= step * 0.5 * (1 + 1e-5) + 1e-7)
    assert q.codes().max() < 2**bits


@pytest.mark.parametrize("bits,group,symmetric,expected", [(4, 32, True, 4 + 1.0), (4, 32, False, 4 + 2.0),
                                                          (2, 128, True, 2 + 0.25), (3, 64, False, 3 + 1.0)])
def test_storage_really_uses_k_bits(bits, group, symmetric, expected):
    q = GroupQuant.from_float(np.random.randn(64, 512), bits, group, symmetric)
    assert q.packed.nbytes * 8 == 64 * 512 * bits
    assert q.bits_per_weight == pytest.approx(expected)
    assert q.nbytes == q.packed.nbytes + q.scales.nbytes + (0 if symmetric else q.offsets.nbytes)


def test_asymmetric_preserves_constant_and_extreme_values():
    w = np.array([[3.0] * 8, [-1.0, 2.0, 0.5, 0.25, -1.0, 2.0, 0.0, 1.0]], np.float32)
    q = GroupQuant.from_float(w, 2, 8, symmetric=False)
    d = q.dequantize()
    np.testing.assert_array_equal(d[0], 3.0)
    assert d[1].min() == -1.0 and d[1].max() == 2.0


def test_leading_dims_and_torch():
    import torch
    w = torch.randn(2, 3, 64)
    q = GroupQuant.from_float(w, 4, 16)
    assert q.dequantize().shape == (2, 3, 64)
    assert q.codes().shape == (2, 3, 64)


def test_bad_input():
    w = np.ones((4, 64), np.float32)
    with pytest.raises(ValueError, match="bits: expected 1..8, got 9"):
        GroupQuant.from_float(w, 9, 32)
    with pytest.raises(TypeError, match="bits: expected an int, got bool"):
        GroupQuant.from_float(w, True, 32)
    with pytest.raises(ValueError, match="group_size: 48 does not divide K = 64"):
        GroupQuant.from_float(w, 4, 48)
    with pytest.raises(TypeError, match="floating-point"):
        GroupQuant.from_float(w.astype(np.int32), 4, 32)
    with pytest.raises(ValueError, match=r"expected a weight array \[..., K\] with K > 0"):
        GroupQuant.from_float(np.zeros((3, 0), np.float32), 4, 1)
    w[1, 5] = np.nan
    with pytest.raises(ValueError, match="row 1, group 0 holds NaN/inf"):
        GroupQuant.from_float(w, 4, 32)


def test_empty_rows():
    q = GroupQuant.from_float(np.zeros((0, 64), np.float32), 4, 32)
    assert q.dequantize().shape == (0, 64)


@given(w=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.sampled_from([4, 8, 16, 32])),
                    elements=st.floats(-1e4, 1e4, width=32)),
       bits=st.integers(1, 8), symmetric=st.booleans())
def test_property_round_trip_bound(w, bits, symmetric):
    group = 4
    q = GroupQuant.from_float(w, bits, group, symmetric)
    step = np.repeat(q.scales, group, axis=1).astype(np.float64)
    err = np.abs(q.dequantize().astype(np.float64) - w)
    amax = np.repeat(np.abs(w).reshape(w.shape[0], -1, group).max(axis=2), group, axis=1)
    tol = step * (0.5 + 1e-5) + amax * 1e-6 + 1e-30  # plus float32 rounding of q * scale + offset
    assert np.all(err <= tol)
