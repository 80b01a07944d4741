import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from frugalnn.formats import FORMATS, get_format, round_to

NARROW = [n for n in FORMATS if n != "fp32"]
EDGES = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 1e-8, 3e-3, 0.1, 65504.0, 1e5, 3.4e38, np.inf, -np.inf, np.nan],
                 np.float32)


@pytest.mark.parametrize("name", NARROW)
def test_in_range_values_match_ml_dtypes(name):
    f = FORMATS[name]
    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32) * np.float32(f.max / 8)
    x = np.concatenate([x, x * 1e-3, x * 1e-6]).astype(np.float32)
    np.testing.assert_array_equal(round_to(x, name), x.astype(f.dtype).astype(np.float32))


@pytest.mark.parametrize("name", NARROW)
@pytest.mark.parametrize("policy,fill", [("saturate", "max"), ("nan", np.nan), ("inf", np.inf)])
def test_overflow_policy(name, policy, fill):
    f = FORMATS[name]
    big = min(f.max * 4, 3.4e38)  # beyond the format's range, still a finite float32
    x = np.array([big, -big, np.inf, -np.inf], np.float32)
    y = round_to(x, name, overflow=policy)
    if fill == "max":
        np.testing.assert_array_equal(y, [f.max, -f.max, f.max, -f.max])
    elif np.isnan(fill):
        assert np.isnan(y).all()
    else:
        np.testing.assert_array_equal(y, [np.inf, -np.inf, np.inf, -np.inf])


@pytest.mark.parametrize("name", NARROW)
def test_overflow_threshold_follows_ties_to_even(name):
    f = FORMATS[name]
    t = f.overflow_threshold
    below = np.nextafter(np.float32(t), np.float32(0))
    assert round_to(np.array([below], np.float32), name, "nan")[0] == np.float32(f.max)
    assert np.isnan(round_to(np.array([np.nextafter(np.float32(t), np.float32(np.inf))], np.float32), name, "nan")[0])


def test_e4m3_tie_at_464_rounds_to_448_not_nan():
    # 464 is halfway between 448 (1.110b x 2^8) and 480 (a NaN encoding in e4m3fn); even wins.
    assert round_to(np.array([464.0], np.float32), "e4m3", "nan")[0] == 448.0
    assert np.isnan(round_to(np.array([464.5], np.float32), "e4m3", "nan")[0])


@pytest.mark.parametrize("name", FORMATS)
def test_edge_values(name):
    y = round_to(EDGES, name)
    assert y.dtype == np.float32
    assert np.isnan(y[-1])  # NaN in, NaN out, even for fp6/fp4 which cannot encode it
    assert y[0] == 0 and not np.signbit(y[0]) and y[1] == 0 and np.signbit(y[1])
    f = FORMATS[name]
    assert y[12] == np.float32(f.max) and y[13] == -np.float32(f.max)  # saturate
    tiny = round_to(np.array([f.smallest_subnormal / 4], np.float32), name)
    assert tiny[0] == 0  # below half the smallest subnormal -> zero


def test_empty_and_shapes_and_0d():
    assert round_to(np.zeros((0, 3), np.float32), "e4m3").shape == (0, 3)
    assert round_to(np.float32(1.3), "e2m1").shape == ()
    assert round_to(np.ones((2, 3, 4), np.float16), "bf16").dtype == np.float32


def test_float64_input_rounds_directly():
    x = np.array([1 + 2**-30], np.float64)  # not representable in fp32
    assert round_to(x, "fp32")[0] == 1.0


def test_torch_in_torch_out():
    import torch
    x = torch.tensor([1.3, 500.0, float("nan")])
    y = round_to(x, "e4m3")
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert y[0].item() == 1.25 and y[1].item() == 448.0 and torch.isnan(y[2])
    assert round_to(torch.tensor([1.0], dtype=torch.bfloat16), "e5m2").dtype == torch.float32


def test_bad_input():
    with pytest.raises(ValueError, match="unknown format 'e9m9'"):
        round_to(np.ones(3, np.float32), "e9m9")
    with pytest.raises(ValueError, match="overflow: expected one of"):
        round_to(np.ones(3, np.float32), "e4m3", overflow="wrap")
    with pytest.raises(TypeError, match="expected a floating-point array, got dtype int64"):
        round_to(np.ones(3, np.int64), "e4m3")
    with pytest.raises(TypeError, match="fmt: expected a format name"):
        round_to(np.ones(3, np.float32), 8)


def test_aliases():
    assert get_format("float8_e4m3fn") is FORMATS["e4m3"]
    assert get_format("FP4") is FORMATS["e2m1"]


@given(x=hnp.arrays(np.float32, st.integers(1, 50), elements=st.floats(-1e4, 1e4, width=32)),
       name=st.sampled_from(NARROW))
def test_property_relative_error_bound(x, name):
    """In the normal range the error is at most half an ulp: |y - x| <= 2^-(m+1) |x|."""
    f = FORMATS[name]
    y = round_to(x, name).astype(np.float64)
    inside = (np.abs(x) >= f.smallest_normal) & (np.abs(x) <= f.max)
    err = np.abs(y - x)[inside]
    assert np.all(err <= f.unit_roundoff * np.abs(x[inside].astype(np.float64)) * (1 + 1e-12))
    sub = np.abs(x) < f.smallest_normal
    assert np.all(np.abs(y - x)[sub] <= f.smallest_subnormal / 2 * (1 + 1e-12))


def test_formats_match_ml_dtypes_metadata():
    for name, f in FORMATS.items():
        fi = ml_dtypes.finfo(f.dtype)
        assert f.mantissa_bits == fi.nmant and f.max == float(fi.max)
