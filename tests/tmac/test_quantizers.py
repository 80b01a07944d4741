"""frugalnn.tmac.quantizers: the GGUF bytes decode (gguf's reference decoder) to exactly the fitted grid,
on odd shapes and edge weights; the fit beats min/max rounding; bad input is refused by name."""
import gguf
import numpy as np
import pytest
from gguf.quants import dequantize
from hypothesis import given
from hypothesis import strategies as st

from frugalnn.tmac import quantizers as Q

RNG = np.random.default_rng(0)
# the decoders of these compute c * scale + offset exactly as the Grid does: bit-for-bit
EXACT = {"Q4_1", "Q5_1", "Q2_K", "Q4_K", "Q5_K"}


def _weights(k: int) -> np.ndarray:
    """Odd M; Gaussian rows plus the edge rows: all-zero, constant +/-, one huge outlier, negative-only,
    positive-only, tiny (fp16 subnormal scales)."""
    w = RNG.standard_normal((13, k)).astype(np.float32)
    w[1] = 0
    w[2] = 0.75
    w[3] = -1.5
    w[4, 7] = 300.0
    w[5] = -np.abs(w[5])
    w[6] = np.abs(w[6]) + 0.5
    w[7] *= 1e-6
    w[8, : k // 2] = 0  # half a row of zeros: whole zero blocks beside normal ones
    return w


def _check_contract(w, g, codes):
    m, k = w.shape
    blocks = Q.encode(g, codes)
    sp = Q.SPECS[g.qtype]
    assert blocks.dtype == np.uint8 and blocks.shape == (m, k // sp.superblock * sp.type_bytes)
    ref = dequantize(blocks, gguf.GGMLQuantizationType[g.qtype]).reshape(m, k)
    mine = g.dequantize(codes)
    if g.qtype in EXACT:
        np.testing.assert_array_equal(ref, mine)
    else:  # (c - z) * s against c * s - z * s: one float32 rounding of c * s
        bound = np.repeat(np.abs(g.scale), g.block, axis=1) * (1 << g.bits) * 2.0**-23
        assert (np.abs(ref - mine) <= bound).all()


@pytest.mark.parametrize("qtype", Q.QTYPES)
def test_encode_decodes_to_the_grid(qtype):
    k = Q.SPECS[qtype].superblock * 2
    w = _weights(k)
    g = Q.fit(w, qtype)
    assert g.scale.shape == g.offset.shape == (13, k // g.block) and g.scale.dtype == np.float32
    codes = Q.round_codes(w, g)
    assert codes.dtype == np.uint8 and codes.shape == w.shape and codes.max() < (1 << g.bits)
    _check_contract(w, g, codes)
    # any codes, not only the nearest ones (GPTQ chooses its own)
    _check_contract(w, g, RNG.integers(0, 1 << g.bits, w.shape).astype(np.uint8))
    assert np.array_equal(Q.quantize(w, qtype), Q.encode(g, codes))


@pytest.mark.parametrize("qtype", Q.QTYPES)
def test_edge_rows_are_represented(qtype):
    w = _weights(Q.SPECS[qtype].superblock)
    g = Q.fit(w, qtype)
    deq = g.dequantize(Q.round_codes(w, g))
    assert np.isfinite(deq).all()
    assert (deq[1] == 0).all()  # all-zero row stays zero
    np.testing.assert_allclose(deq[2], 0.75, rtol=2e-3)  # constants within fp16 rounding of the scale
    np.testing.assert_allclose(deq[3], -1.5, rtol=2e-3)
    big = g.dequantize(Q.round_codes(w, g))[4, 7]
    assert abs(big - 300) < 300 * 0.15  # the outlier keeps its size (the rest of its block pays for it)
    # a negative-only row stays negative, up to the grid's step near zero
    assert deq[5].max() <= 0.25 * np.abs(w[5]).max()
    assert ((deq[5] - w[5]) ** 2).sum() <= 0.2 * (w[5] ** 2).sum()


def _rtn_minmax(w, bits, block, zero=None):
    """Round-to-nearest on each block's min/max (the LUT formats' current quantizer): the baseline. With
    `zero` (symmetric types): the block's largest |w| on the end code 0, as llama.cpp's reference does."""
    x = w.reshape(-1, block).astype(np.float64)
    if zero:
        peak = np.take_along_axis(x, np.abs(x).argmax(1)[:, None], 1)
        s = np.where(peak != 0, -peak / zero, 1)
        return ((np.clip(np.rint(x / s) + zero, 0, (1 << bits) - 1) - zero) * s).reshape(w.shape)
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    s = np.where(hi > lo, (hi - lo) / ((1 << bits) - 1), 1)
    q = np.clip(np.rint((x - lo) / s), 0, (1 << bits) - 1)
    return (q * s + lo).reshape(w.shape)


@pytest.mark.parametrize("qtype", Q.QTYPES)
def test_fit_beats_minmax_rounding_on_gaussian(qtype):
    sp = Q.SPECS[qtype]
    w = RNG.standard_normal((32, 512)).astype(np.float32)
    g = Q.fit(w, qtype)
    ours = ((g.dequantize(Q.round_codes(w, g)) - w) ** 2).sum()
    rtn = ((_rtn_minmax(w, sp.bits, sp.block, sp.zero) - w) ** 2).sum()  # with fp32 scales: a generous baseline
    assert ours <= rtn


def test_importance_lowers_the_weighted_error():
    w = RNG.standard_normal((16, 256)).astype(np.float32)
    imp = np.ones(256, np.float32)
    imp[:32] = 100.0  # the first columns matter most
    e = lambda g: ((g.dequantize(Q.round_codes(w, g)) - w)[:, :32] ** 2).sum()  # noqa: E731
    assert e(Q.fit(w, "Q3_K", imp)) < e(Q.fit(w, "Q3_K"))
    per_elem = np.broadcast_to(imp, w.shape).copy()
    a, b = Q.fit(w, "Q3_K", imp), Q.fit(w, "Q3_K", per_elem)
    assert np.array_equal(a.scale, b.scale)


def test_concat_along_k_matches_parts():
    w = RNG.standard_normal((5, 768)).astype(np.float32)
    parts = [Q.fit(w[:, i:i + 256], "Q4_K") for i in range(0, 768, 256)]
    g = Q.concat(parts)
    assert g.shape == (5, 768)
    whole = Q.fit(w, "Q4_K")
    assert np.array_equal(g.scale, whole.scale) and np.array_equal(g.offset, whole.offset)
    codes = Q.round_codes(w, g)
    joined = np.concatenate([Q.encode(p, Q.round_codes(w[:, i * 256:(i + 1) * 256], p))
                             for i, p in enumerate(parts)], axis=1)
    assert np.array_equal(Q.encode(g, codes), joined)
    with pytest.raises(ValueError, match="share qtype"):
        Q.concat([parts[0], Q.fit(w[:, :256], "Q2_K")])
    with pytest.raises(ValueError, match="at least one"):
        Q.concat([])


def test_round_column_matches_round_codes():
    w = _weights(256)
    for qt in ("Q2_K", "Q6_K", "Q4_0"):
        g = Q.fit(w, qt)
        codes = Q.round_codes(w, g)
        for k in (0, 17, 255):
            assert np.array_equal(g.round_column(w[:, k], k), codes[:, k])
            s, o = g.column(k)
            assert np.array_equal(s, g.scale[:, k // g.block]) and np.array_equal(o, g.offset[:, k // g.block])


def test_threads_and_chunks_do_not_change_the_fit(monkeypatch):
    from frugalnn._arrays import max_threads

    w = RNG.standard_normal((9, 512)).astype(np.float32)
    one = Q.quantize(w, "Q3_K", threads=1)
    assert np.array_equal(Q.quantize(w, "Q3_K", threads=min(2, max_threads())), one)
    monkeypatch.setattr(Q, "CHUNK_ELEMENTS", 1024)  # 2 rows per chunk
    assert np.array_equal(Q.quantize(w, "Q3_K", threads=1), one)
    with pytest.raises(ValueError, match="threads"):
        Q.fit(w, "Q3_K", threads=0)


def test_bits_per_weight_are_llama_cpps():
    from frugalnn.bench.ggml_peer import bits_per_weight

    for qt in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q4_1", "Q8_0"):
        assert Q.SPECS[qt].bits_per_weight == bits_per_weight(qt)


# ---- bad input ------------------------------------------------------------------------------------------
def test_non_finite_weight_names_row_and_column():
    w = RNG.standard_normal((3, 256)).astype(np.float32)
    w[2, 17] = np.nan
    with pytest.raises(ValueError, match=r"row 2, column 17"):
        Q.fit(w, "Q4_K")
    w[2, 17] = np.inf
    with pytest.raises(ValueError, match=r"row 2, column 17"):
        Q.quantize(w, "Q4_0")


def test_shape_and_type_checks():
    w = RNG.standard_normal((3, 96)).astype(np.float32)
    with pytest.raises(ValueError, match="multiple of 256"):
        Q.fit(w, "Q4_K")
    with pytest.raises(ValueError, match="qtype"):
        Q.fit(w, "IQ2_XS")
    with pytest.raises(ValueError, match="2-d"):
        Q.fit(w[0], "Q4_0")
    with pytest.raises(TypeError):
        Q.fit(w.astype(np.int32), "Q4_0")
    with pytest.raises(ValueError, match="fp16"):
        Q.fit(np.full((1, 32), 1e7, np.float32), "Q4_0")
    g = Q.fit(w, "Q4_0")
    with pytest.raises(ValueError, match="outside 0..15"):
        Q.encode(g, np.full(w.shape, 16, np.uint8))
    with pytest.raises(TypeError):
        Q.encode(g, np.zeros(w.shape, np.float32))
    with pytest.raises(ValueError, match="shape"):
        Q.round_codes(w[:2], g)


def test_importance_checks():
    w = RNG.standard_normal((3, 64)).astype(np.float32)
    with pytest.raises(ValueError, match=r"importance: expected shape \(64,\)"):
        Q.fit(w, "Q4_0", np.ones(63))
    bad = np.ones(64)
    bad[5] = -1
    with pytest.raises(ValueError, match=r"importance: element \(5,\) is -1"):
        Q.fit(w, "Q4_0", bad)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Q.fit(w, "Q4_0", bad)
    with pytest.raises(TypeError, match="importance"):
        Q.fit(w, "Q4_0", np.ones(64, bool))


def test_to_lut_holds_the_encoded_weights():
    """Every type the quantizers write is one LUTWeight.from_gguf imports as stored: the LUT weight holds the
    fitted grid, and the kernel multiplies by it."""
    from frugalnn.tmac import matmul
    from frugalnn.tmac.bench import TABLE_NMSE_BOUND
    from frugalnn.tmac.gguf import FORMATS

    w = RNG.standard_normal((40, 512)).astype(np.float32)
    x = RNG.standard_normal((3, 512)).astype(np.float32)
    assert set(Q.QTYPES) <= set(FORMATS)
    for qt in Q.QTYPES:
        g = Q.fit(w, qt)
        ours = g.dequantize(Q.round_codes(w, g))
        lw = Q.to_lut(w, qt)
        np.testing.assert_allclose(lw.dequantize(), ours, rtol=1e-6, atol=1e-6 * np.abs(ours).max())
        ref = x @ ours.T
        assert ((matmul(x, lw) - ref) ** 2).sum() / (ref**2).sum() < TABLE_NMSE_BOUND, qt


# ---- the LUT kernel's group formats (LUTWeight.from_float(search="mse")) -------------------------------
@pytest.mark.parametrize("bits,symmetric", [(b, s) for b in (1, 2, 3, 4) for s in (True, False)])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_mse_search_beats_minmax_in_the_lut_formats(bits, symmetric, group):
    from frugalnn.tmac import LUTWeight

    w = RNG.standard_normal((33, 256)).astype(np.float32)
    err = lambda lw: float(((lw.dequantize() - w) ** 2).sum())  # noqa: E731
    ours = LUTWeight.from_float(w, bits, group, symmetric, search="mse")
    base = LUTWeight.from_float(w, bits, group, symmetric)
    assert ours.shape == base.shape and ours.symmetric == base.symmetric
    assert err(ours) <= err(base) * (1 + 1e-6)


def test_fit_groups_fp16_and_checks():
    w = RNG.standard_normal((5, 256)).astype(np.float32)
    codes, s, o = Q.fit_groups(w, 3, 128, False, fp16=True)
    assert np.array_equal(s, s.astype(np.float16).astype(np.float32))
    assert np.array_equal(o, o.astype(np.float16).astype(np.float32))
    assert codes.max() <= 7 and codes.shape == w.shape and s.shape == (5, 2)
    codes, s, o = Q.fit_groups(w, 2, 64, True)
    np.testing.assert_array_equal(o, -1.5 * s)
    assert (s >= 0).all()
    with pytest.raises(ValueError, match="multiple of 96"):
        Q.fit_groups(w, 2, 96, True)
    w[4, 200] = np.inf
    with pytest.raises(ValueError, match="row 4, column 200"):
        Q.fit_groups(w, 2, 64, True)
    from frugalnn.tmac import LUTWeight

    with pytest.raises(ValueError, match="search"):
        LUTWeight.from_float(w, 2, 64, search="gptq")


# ---- property: the contract on random shapes, magnitudes and importances --------------------------------
@given(qtype=st.sampled_from(Q.QTYPES), m=st.integers(1, 5), blocks=st.integers(1, 2),
       log_scale=st.floats(-3, 3), seed=st.integers(0, 2**31), weighted=st.booleans())
def test_contract_property(qtype, m, blocks, log_scale, seed, weighted):
    rng = np.random.default_rng(seed)
    k = Q.SPECS[qtype].superblock * blocks
    w = (rng.standard_normal((m, k)) * 10.0**log_scale).astype(np.float32)
    imp = rng.uniform(0, 2, k).astype(np.float32) if weighted else None
    g = Q.fit(w, qtype, imp)
    codes = Q.round_codes(w, g)
    _check_contract(w, g, codes)
    deq = g.dequantize(codes)
    assert np.isfinite(deq).all()
    sp = Q.SPECS[qtype]
    if not weighted:  # never worse than min/max rounding of the same block size (fp32 scales)
        assert ((deq - w) ** 2).sum() <= ((_rtn_minmax(w, sp.bits, sp.block, sp.zero) - w) ** 2).sum() * 1.05
