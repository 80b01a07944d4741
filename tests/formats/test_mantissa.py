from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugalnn.formats import round_mantissa, truncate_mantissa


def _exact_round(v: float, bits: int) -> float:
    """Round to `bits` mantissa bits, ties to even, in exact rational arithmetic (normal floats)."""
    if v == 0 or not np.isfinite(v):
        return v
    m, e = np.frexp(abs(v))  # v = m 2^e, m in [0.5, 1)
    q = Fraction(2) ** (bits + 1 - int(e))
    scaled = Fraction(abs(v)) * q
    lo = scaled.numerator // scaled.denominator
    rem = scaled - lo
    up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and lo % 2 == 1)
    return float(np.copysign(float((lo + up) / q), v))


LO, HI = float(np.float32(1e-30)), float(np.float32(1e30))


@given(v=st.floats(LO, HI, width=32) | st.floats(-HI, -LO, width=32), bits=st.integers(0, 23))
def test_round_mantissa_matches_exact_rational(v, bits):
    got = float(round_mantissa(np.array([v], np.float32), bits)[0])
    assert got == _exact_round(float(np.float32(v)), bits)


@given(v=st.floats(LO, HI, width=32), bits=st.integers(0, 23))
def test_truncate_is_toward_zero_and_within_one_ulp(v, bits):
    x = np.array([v, -v], np.float32)
    y = truncate_mantissa(x, bits)
    assert np.all(np.abs(y) <= np.abs(x))
    ulp = 2.0 ** (np.floor(np.log2(abs(float(x[0])))) - bits)
    assert np.all(np.abs(y.astype(np.float64) - x) < ulp)
    assert y[0] == -y[1]


def test_edge_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38], np.float32)
    nan_payload = np.array([0x7F800001], np.uint32).view(np.float32)  # truncating would make it inf
    for fn in (truncate_mantissa, round_mantissa):
        y = fn(x, 2)
        assert y[0] == 0 and not np.signbit(y[0]) and np.signbit(y[1])
        assert y[2] == np.inf and y[3] == -np.inf and np.isnan(y[4])
        assert np.isnan(fn(nan_payload, 3)[0])
    assert round_mantissa(x, 2)[6] == np.inf  # carry out of the largest binade
    assert truncate_mantissa(x, 2)[6] == np.float32(1.75 * 2**127)
    assert truncate_mantissa(x, 23)[5] == x[5] and round_mantissa(x, 23)[5] == x[5]


def test_bits_validation_and_torch():
    with pytest.raises(ValueError, match="bits: expected 0..23, got 24"):
        round_mantissa(np.ones(2, np.float32), 24)
    with pytest.raises(TypeError, match="bits: expected an int"):
        truncate_mantissa(np.ones(2, np.float32), 2.5)
    import torch
    y = truncate_mantissa(torch.tensor([1.99]), 1)
    assert isinstance(y, torch.Tensor) and y.item() == 1.5
