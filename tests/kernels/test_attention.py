"""Fused attention kernel vs the float64 reference: odd shapes, causal, GQA, edge values, both backends.

Tolerances, not bit equality: the kernel accumulates in float32 in tile order (and, on AVX2,
with FMA and a polynomial exp), the reference in float64 in one go.
"""
import numpy as np
import pytest

from frugalnn import _core
from frugalnn.kernels import attention, available_backends, use_backend

SHAPES = [  # (heads, L, S, E, Ev)
    (1, 1, 1, 1, 1), (2, 5, 7, 3, 5), (3, 47, 130, 16, 24), (2, 49, 129, 64, 64), (1, 97, 300, 128, 128),
    (2, 64, 256, 17, 33), (1, 3, 500, 8, 15),
]


def inputs(h, l, s, e, ev, seed=0, hk=None):
    rng = np.random.default_rng(seed)
    hk = hk or h
    return (rng.standard_normal((h, l, e), dtype=np.float32), rng.standard_normal((hk, s, e), dtype=np.float32),
            rng.standard_normal((hk, s, ev), dtype=np.float32))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference(backend, shape, causal):
    q, k, v = inputs(*shape, seed=sum(shape))
    out = attention.fused_attention(q, k, v, causal=causal)
    ref = attention.fused_attention(q, k, v, causal=causal, impl="numpy")
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-6)


def test_large_scores_and_custom_scale(backend):
    q, k, v = inputs(2, 40, 200, 32, 8, seed=3)
    for scale in (5.0, 0.0, -1.5):  # 5: scores of +-100s, exp underflows for most keys
        np.testing.assert_allclose(attention.fused_attention(q, k, v, scale=scale),
                                   attention.fused_attention(q, k, v, scale=scale, impl="numpy"), rtol=3e-5, atol=3e-6)


def test_grouped_query_attention_and_batch_dims(backend):
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 6, 10, 8), dtype=np.float32)
    k = rng.standard_normal((2, 2, 13, 8), dtype=np.float32)
    v = rng.standard_normal((2, 2, 13, 4), dtype=np.float32)
    out = attention.fused_attention(q, k, v, enable_gqa=True, causal=True)
    assert out.shape == (2, 6, 10, 4)
    kk, vv = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)
    np.testing.assert_allclose(out, attention.fused_attention(q, kk, vv, causal=True, impl="numpy"), rtol=2e-5,
                               atol=2e-6)
    with pytest.raises(ValueError, match="enable_gqa=True"):
        attention.fused_attention(q, k, v)


def test_threads_do_not_change_results(backend):
    q, k, v = inputs(3, 150, 260, 32, 32, seed=5)
    one = attention.fused_attention(q, k, v, causal=True, threads=1)
    np.testing.assert_array_equal(one, attention.fused_attention(q, k, v, causal=True, threads=2))
    np.testing.assert_array_equal(one, attention.fused_attention(q, k, v, causal=True, threads=7))


def test_nan_and_inf_propagate_to_their_rows_only(backend):
    q, k, v = inputs(1, 20, 50, 8, 8, seed=2)
    q[0, 3, 0] = np.nan
    v[0, 7, 1] = np.inf
    out = attention.fused_attention(q, k, v)
    assert np.isnan(out[0, 3]).all()
    assert np.isinf(out[0, :3, 1]).all() or np.isnan(out[0, :3, 1]).all()  # inf * p summed
    finite_cols = [c for c in range(8) if c != 1]
    assert np.isfinite(out[0, 4:][:, finite_cols]).all()
    # zeros, negative zeros and subnormals are ordinary inputs
    z = np.zeros((1, 4, 8), np.float32)
    z[0, 0, 0] = -0.0
    z[0, 1, 1] = 1e-40
    np.testing.assert_allclose(attention.fused_attention(z, z, v[:, :4]), np.broadcast_to(v[:, :4].mean(1), (1, 4, 8)),
                               rtol=1e-6, atol=1e-6)


def test_bad_input_is_rejected():
    q, k, v = inputs(1, 4, 6, 8, 8)
    with pytest.raises(ValueError, match="sequence length 0"):
        attention.fused_attention(q[:, :0], k, v)
    with pytest.raises(ValueError, match="sequence length 0"):
        attention.fused_attention(q, k[:, :0], v[:, :0])
    with pytest.raises(TypeError, match="float32"):
        attention.fused_attention(q.astype(np.float64), k, v)
    with pytest.raises(ValueError, match="head dim 4 differs"):
        attention.fused_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="does not match k"):
        attention.fused_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="head dim 0"):
        attention.fused_attention(q[..., :0], k[..., :0], v)
    with pytest.raises(ValueError, match="scale"):
        attention.fused_attention(q, k, v, scale=float("nan"))
    with pytest.raises(ValueError, match="threads"):
        attention.fused_attention(q, k, v, threads=0)
    with pytest.raises(ValueError, match="impl"):
        attention.fused_attention(q, k, v, impl="cuda")
    # the binding itself: strided views and shape mismatches are errors, never copies or crashes
    out = np.empty((1, 4, 8), np.float32)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.attention.fused_attention(q[:, ::2], k, v, False, 1.0, out[:, :2])
    with pytest.raises(ValueError, match="out"):
        _core.attention.fused_attention(q, k, v, False, 1.0, out[:, :3])
    with pytest.raises(ValueError, match="not a multiple"):
        _core.attention.fused_attention(np.ones((3, 4, 8), np.float32), np.ones((2, 6, 8), np.float32),
                                        np.ones((2, 6, 8), np.float32), False, 1.0, np.empty((3, 4, 8), np.float32))
    with pytest.raises(ValueError, match="share memory"):
        _core.attention.fused_attention(q, k, v, False, 1.0, q)


def test_workspace_is_independent_of_sequence_length():
    # Up to MAX_SUB_BLOCKS query blocks (Q^T + accumulator each) plus one score tile and one packed
    # value tile: a few hundred KiB per thread at the usual head dims, whatever L and S are.
    assert attention.workspace_bytes(64) == attention.workspace_bytes(64, 64) < 256 * 1024
    assert attention.workspace_bytes(128, 64) > attention.workspace_bytes(64, 64)
    assert attention.workspace_bytes(128) < 512 * 1024


def test_results_do_not_depend_on_how_blocks_are_grouped(backend):
    """Each query block sees the same key tiles in the same order whether it shares them with
    other blocks of its task or not: threads=1 (4 blocks per task) == many threads (1 per task)."""
    q, k, v = inputs(1, 5 * attention.BLOCK_Q + 7, 3 * attention.BLOCK_K + 5, 24, 20, seed=9)
    for causal in (False, True):
        grouped = attention.fused_attention(q, k, v, causal=causal, threads=1)
        np.testing.assert_array_equal(grouped, attention.fused_attention(q, k, v, causal=causal, threads=64))


@pytest.mark.skipif("avx2" not in available_backends(), reason="no AVX2 on this CPU")
def test_vectorised_exp_accuracy_and_special_values():
    """The AVX2 softmax exp (valid for x <= 88.3; the kernel passes x - max <= 0): <= 1.5 ulp
    against float64 exp for results >= FLT_MIN (1.03 ulp worst seen over a 160M-point sweep of
    [-88, 0]), nonzero subnormal results within one subnormal spacing, results below 8.32e-39
    (x < -87.6831) flushed to +0, exp(-inf) = 0 exactly, exp(+-0) = 1 exactly, NaN kept."""
    x = np.concatenate([np.linspace(-104.5, 88.3, 1_000_003, dtype=np.float32),
                        np.linspace(-0.5, 0.5, 100_001, dtype=np.float32)])
    with use_backend("avx2"):
        y = attention.exp(x).astype(np.float64)
        special = attention.exp(np.array([0.0, -0.0, -np.inf, np.nan, -88.0, -87.7, -1e-30, 1e-30], np.float32))
    t = np.exp(x.astype(np.float64))
    tiny = np.finfo(np.float32).tiny
    normal = t >= tiny
    ulp = np.spacing(t[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y[normal] - t[normal]) / ulp) <= 1.5
    flushed = x < -87.6832
    assert (y[flushed] == 0).all() and (t[flushed] < 8.32e-39).all()
    sub = (t < tiny) & ~flushed
    assert sub.any() and np.max(np.abs(y[sub] - t[sub])) <= 2.0**-149
    np.testing.assert_array_equal(special[[0, 1, 2, 4, 5, 6, 7]], [1, 1, 0, 0, 0, 1, 1])
    assert np.isnan(special[3])


def test_reference_documents_the_same_workspace_formula():
    from frugalnn.kernels import attention_ref

    for e, ev in ((64, 64), (128, 128), (17, 33)):
        assert attention_ref.workspace_bytes(e, ev) == attention.workspace_bytes(e, ev)


def test_exp_refuses_arguments_above_its_domain(backend):
    with pytest.raises(ValueError, match="x <= 88.3.*100.0"):
        attention.exp(np.array([0.0, 100.0], np.float32))
    with pytest.raises(ValueError, match="inf"):
        attention.exp(np.array([np.inf], np.float32))
    assert attention.exp(np.array([88.3], np.float32))[0] > 1e38


# ---- issue 19: scale and head counts ---------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e300, -1e300, 3.5e38, float("inf"), np.float64(1e39)])
def test_scale_must_be_finite_in_float32(scale):
    # 1e300 passed as finite, became inf in the kernel's float32, and every output was NaN
    q, k, v = inputs(1, 3, 5, 8, 8)
    for impl in ("native", "numpy"):
        with pytest.raises(ValueError, match="scale: expected a finite float32 value"):
            attention.fused_attention(q, k, v, scale=scale, impl=impl)
    with pytest.raises(ValueError, match="scale: expected a finite float32 value"):
        _core.attention.fused_attention(q, k, v, False, float(scale), np.empty((1, 3, 8), np.float32))


@pytest.mark.parametrize("scale", [np.float32(0.5), np.float64(0.5), np.int64(2), 0.0, -0.25, 1e-40])
def test_any_finite_float32_scale_is_accepted_numpy_scalars_too(backend, scale):
    # np.float32(0.5) was refused as "expected a finite number"; zero and negative scales are
    # allowed as in torch's SDPA (the kernel folds scale into q)
    q, k, v = inputs(2, 5, 7, 8, 8)
    got = attention.fused_attention(q, k, v, scale=scale)
    np.testing.assert_allclose(got, attention.fused_attention(q, k, v, scale=float(scale), impl="numpy"),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="scale: expected a real number"):
        attention.fused_attention(q, k, v, scale="0.5")


@pytest.mark.parametrize("qs,ks", [((0, 3, 8), (0, 5, 8)), ((2, 0, 3, 8), (2, 0, 5, 8)), ((4, 3, 8), (0, 5, 8)),
                                   ((0, 3, 8), (2, 5, 8))])
def test_zero_heads_is_a_value_error(qs, ks):
    # `qb[-1] % kb[-1]` raised ZeroDivisionError
    q, k = np.ones(qs, np.float32), np.ones(ks, np.float32)
    with pytest.raises(ValueError, match="heads"):
        attention.fused_attention(q, k, k, enable_gqa=True)
