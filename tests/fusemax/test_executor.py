"""The numpy executor: every attention cascade equals float64 softmax attention."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalnn.fusemax import cascade
from frugalnn.fusemax.cascade import parse


def softmax_attention(q, k, v):
    s = q @ k.T / np.sqrt(q.shape[1])
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v


@pytest.mark.parametrize("variant", sorted(cascade.ATTENTION))
@pytest.mark.parametrize("p,m,e,f,tile", [(1, 1, 1, 1, 1), (5, 12, 3, 7, 4), (16, 64, 8, 8, 16), (3, 30, 5, 2, 30)])
def test_attention_cascades_equal_softmax_attention(variant, p, m, e, f, tile):
    rng = np.random.default_rng(p * 100 + m)
    q, k, v = rng.standard_normal((p, e)) * 3, rng.standard_normal((m, e)) * 3, rng.standard_normal((m, f))
    out = cascade.attention(variant, q, k, v, tile=tile)
    np.testing.assert_allclose(out, softmax_attention(q, k, v), rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(1, 6), tiles=st.integers(1, 5), tile=st.integers(1, 6), e=st.integers(1, 4),
       scale=st.floats(0.1, 30), seed=st.integers(0, 2**16))
def test_one_pass_matches_three_pass_on_random_shapes(p, tiles, tile, e, scale, seed):
    rng = np.random.default_rng(seed)
    m = tiles * tile
    q, k, v = rng.standard_normal((p, e)) * scale, rng.standard_normal((m, e)), rng.standard_normal((m, 3))
    np.testing.assert_allclose(cascade.attention("1-pass", q, k, v, tile=tile),
                               cascade.attention("3-pass", q, k, v), rtol=1e-10, atol=1e-12)


def test_online_softmax_and_matmul():
    x = np.random.default_rng(0).standard_normal((9, 4)) * 10
    y = parse(cascade.SOFTMAX_ONLINE).run({"X": x})["Y"]
    np.testing.assert_allclose(y, np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0), rtol=1e-13)
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(parse(cascade.MATMUL).run({"A": a, "B": b})["C"], a @ b)


def test_elementwise_max_min_negation_and_constants():
    c = parse("input A[i], B[i]\nC[i] = max(A[i], B[i]) - min(A[i], -B[i]) / 2\nD[] = min(i) C[i]")
    a, b = np.array([1.0, -2, 3]), np.array([0.5, 4, -1])
    out = c.run({"A": a, "B": b})
    np.testing.assert_array_equal(out["C"], np.maximum(a, b) - np.minimum(a, -b) / 2)
    assert out["D"][()] == out["C"].min()


def test_tile_that_does_not_divide_is_rejected():
    c = parse(cascade.ATTENTION_2PASS)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="tile size M0=4 does not divide M=10"):
        c.run({"Q": rng.standard_normal((2, 3)), "K": rng.standard_normal((2, 10)), "V": rng.standard_normal((1, 10))},
              M0=4)
    with pytest.raises(ValueError, match=r"give the tile size M0"):
        c.run({"Q": np.ones((2, 3)), "K": np.ones((2, 4)), "V": np.ones((1, 4))})


def test_mismatched_and_missing_inputs():
    c = parse(cascade.ATTENTION_3PASS)
    with pytest.raises(ValueError, match="rank e has extent 2 elsewhere, 3 here"):
        c.run({"Q": np.ones((2, 5)), "K": np.ones((3, 4)), "V": np.ones((1, 4))})
    with pytest.raises(ValueError, match="missing V"):
        c.run({"Q": np.ones((2, 5)), "K": np.ones((2, 4))})
    with pytest.raises(ValueError, match="expected 2 axes"):
        c.run({"Q": np.ones(2), "K": np.ones((2, 4)), "V": np.ones((1, 4))})
    with pytest.raises(ValueError, match="not declared"):
        c.run({"Q": np.ones((2, 5)), "K": np.ones((2, 4)), "V": np.ones((1, 4)), "W": 1})
    with pytest.raises(ValueError, match="variant"):
        cascade.attention("0-pass", np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)))


def test_empty_rank_is_rejected():
    with pytest.raises(ValueError, match="rank m has extent 0"):
        parse(cascade.ATTENTION_3PASS).run({"Q": np.ones((2, 3)), "K": np.ones((2, 0)), "V": np.ones((1, 0))})
