import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn.formats import DFP

finite = st.floats(-1e6, 1e6, width=32, allow_subnormal=True)


@given(x=hnp.arrays(np.float32, st.integers(1, 200), elements=finite), bits=st.sampled_from([16, 8]),
       headroom=st.integers(0, 3), block=st.sampled_from([None, 1, 7, 32]))
def test_nearest_error_bound_and_headroom(x, bits, headroom, block):
    d = DFP.from_float(x, bits=bits, block_size=block, headroom=headroom)
    err = np.abs(d.dequantize().astype(np.float64) - x)
    assert np.all(err <= d.abs_error_bound())
    if headroom:
        assert np.all(np.abs(d.mantissa.astype(np.int32)) <= 2 ** (bits - 1 - headroom))
    assert d.mantissa.dtype == (np.int16 if bits == 16 else np.int8)


def test_relative_to_block_max():
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    d = DFP.from_float(x)  # int16, headroom 2: error <= max|x| 2^-13
    assert np.max(np.abs(d.dequantize() - x)) <= np.abs(x).max() * 2.0**-13


def test_stochastic_rounding_is_unbiased():
    x = np.full(200_000, 1.0 + 2.0**-15, np.float32)  # sits between two int16 mantissa steps
    d = DFP.from_float(x, rounding="stochastic", rng=0)
    y = d.dequantize().astype(np.float64)
    assert np.all(np.abs(y - x) < d.abs_error_bound("stochastic"))
    assert abs(y.mean() - float(x[0])) < 2e-6
    nearest = DFP.from_float(x).dequantize()
    assert abs(nearest.mean() - float(x[0])) > abs(y.mean() - float(x[0]))


def test_blocks_get_their_own_exponent():
    x = np.concatenate([np.full(32, 1e-3), np.full(32, 1e3)]).astype(np.float32)
    per_tensor = DFP.from_float(x, bits=8)
    blocked = DFP.from_float(x, bits=8, block_size=32)
    assert blocked.exponent.shape == (2,)
    assert np.allclose(blocked.dequantize(), x, rtol=2**-5)
    assert np.all(per_tensor.dequantize()[:32] == 0)  # swamped by the shared exponent


def test_edge_values():
    z = DFP.from_float(np.zeros(5, np.float32))
    assert np.all(z.dequantize() == 0)
    e = DFP.from_float(np.zeros((0, 4), np.float32), block_size=8)
    assert e.dequantize().shape == (0, 4)
    sub = np.array([1e-45, -3e-45, 1e-44], np.float32)
    np.testing.assert_array_equal(DFP.from_float(sub).dequantize(), sub)
    big = np.array([3.4e38, -1.0], np.float32)
    d = DFP.from_float(big)
    assert np.isfinite(d.dequantize()).all()
    assert np.all(np.abs(d.dequantize().astype(np.float64) - big) <= d.abs_error_bound())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(bad):
    with pytest.raises(ValueError, match=r"non-finite value .* at index \(1,\)"):
        DFP.from_float(np.array([1.0, bad], np.float32))


def test_argument_validation():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="bits: expected 16 or 8, got 12"):
        DFP.from_float(x, bits=12)
    with pytest.raises(ValueError, match="headroom: expected 0..14, got 15"):
        DFP.from_float(x, headroom=15)
    with pytest.raises(ValueError, match="rounding: expected one of"):
        DFP.from_float(x, rounding="up")
    with pytest.raises(ValueError, match="block_size: expected >= 1, got 0"):
        DFP.from_float(x, block_size=0)
    with pytest.raises(TypeError, match="floating-point"):
        DFP.from_float(np.ones(3, np.int32))


def test_torch_round_trip():
    import torch
    t = torch.randn(3, 5)
    d = DFP.from_float(t)
    back = d.dequantize(as_tensor=True)
    assert isinstance(back, torch.Tensor) and torch.allclose(back, t, atol=float(np.abs(t.numpy()).max()) * 2**-12)
