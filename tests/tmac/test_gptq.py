"""GPTQ (frugalnn.tmac.gptq) on one layer, the grids it quantizes on (frugalnn.tmac.grids), the model-level
sweep (frugalnn.tmac.calibrated) and its invariant: on every layer GPTQ's output error on the calibration inputs
is at most round-to-nearest's on the same grid family."""
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from frugalnn.tmac import gptq as G
from frugalnn.tmac import grids

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from tiny_gguf import write_tiny_llama  # noqa: E402

RNG = np.random.default_rng(0)
M, K, N = 48, 256, 1024
MIX = RNG.standard_normal((K, K)) * 0.3 + np.eye(K)  # correlated inputs: where error feedback pays
X = torch.tensor(RNG.standard_normal((N, K)) @ MIX, dtype=torch.float32)
W = RNG.standard_normal((M, K)).astype(np.float32)


class Q4_0Standin:
    """A local Q4_0 grid written from llama.cpp's description, independent of frugalnn.tmac.grids."""

    width = 32

    @staticmethod
    def fit(w):
        b = w.reshape(-1, 32)
        amax = b[np.arange(len(b)), np.abs(b).argmax(1)]
        d = (amax / -8).astype(np.float16).astype(np.float32).reshape(w.shape[0], -1)
        return grids.Grid("Q4_0", 4, 32, d, -8 * d)


def hessian():
    h = G.Hessian(K)
    for part in X.split(300):
        h.add(part)
    return h.matrix


def test_hessian_is_two_x_xt_over_n():
    x = X.double()
    torch.testing.assert_close(hessian(), 2 * x.T @ x / N)


def test_hessian_without_inputs_is_an_error():
    with pytest.raises(ValueError, match="no calibration inputs"):
        G.Hessian(4).matrix


@pytest.mark.parametrize("qtype", ["g64b3a", "g32b2a", "g128b4a", "Q4_0", "Q4_1", "Q3_K", "Q2_K"])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_rtn_and_codes_match_weights(qtype, act_order):
    h = hessian()
    fam = grids.family(qtype)
    r = G.rtn(W, fam.fit, fam.width, fam.concat, fam.round_codes, fam.dequantize)
    q = G.gptq(W, h, fam.fit, fam.width, fam.concat, act_order=act_order)
    assert q.codes.dtype == np.uint8 and q.codes.shape == W.shape
    assert q.codes.max() < 2 ** q.grid.bits
    np.testing.assert_allclose(fam.dequantize(q.grid, q.codes), q.weight, rtol=1e-6, atol=1e-6)
    e_rtn, e_gptq = G.output_error(W, r.weight, h), G.output_error(W, q.weight, h)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)


def test_identity_hessian_is_round_to_nearest():
    """No input correlation, no damping: nothing to feed back, so GPTQ is RTN on the same grid."""
    fam = grids.family("g64b3a")
    r = G.rtn(W, fam.fit, fam.width, fam.concat, fam.round_codes, fam.dequantize)
    q = G.gptq(W, torch.eye(K, dtype=torch.float64), fam.fit, fam.width, fam.concat, percdamp=0)
    np.testing.assert_array_equal(q.codes, r.codes)


def test_standin_q4_0_grid():
    """GPTQ over a local stand-in grid (llama.cpp's Q4_0 rounding, not frugalnn.tmac.quantizers'): the loop only
    needs fit() -> scale/offset, and beats RTN on the same stand-in."""
    h = hessian()
    q = G.gptq(W, h, Q4_0Standin.fit, 32, grids.concat)
    rs = G.rtn(W, Q4_0Standin.fit, 32, grids.concat, grids.round_codes, grids.dequantize)
    np.testing.assert_allclose(grids.dequantize(q.grid, q.codes), q.weight, rtol=1e-6, atol=1e-7)
    assert G.output_error(W, q.weight, h) < 0.8 * G.output_error(W, rs.weight, h)


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q5_0", "Q2_K", "Q3_K", "Q4_K"])
def test_gptq_grids_encode_to_what_gguf_reads(qtype):
    """GPTQ's codes on the quantizers' grid, encoded: gguf's own dequantizer reads back GPTQ's weights."""
    fam = grids.family(qtype)
    q = G.gptq(W, hessian(), fam.fit, fam.width, fam.concat)
    back = gguf.quants.dequantize(fam.encode(q.grid, q.codes), gguf.GGMLQuantizationType[qtype]).reshape(M, K)
    np.testing.assert_allclose(back, q.weight, rtol=1e-5, atol=1e-5 * np.abs(q.weight).max())


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1"])
def test_rtn_encode_round_trips_through_gguf(qtype):
    fam = grids.family(qtype)
    r = G.rtn(W, fam.fit, fam.width, fam.concat, fam.round_codes, fam.dequantize)
    raw = fam.encode(r.grid, r.codes)
    assert raw.shape == (M, K // 32 * (18 if qtype == "Q4_0" else 20))
    back = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]).reshape(M, K)
    np.testing.assert_allclose(back, r.weight, rtol=1e-6, atol=1e-6)
    # and no worse than gguf's own reference quantizer of the same type
    ref = gguf.quants.dequantize(gguf.quants.quantize(W, gguf.GGMLQuantizationType[qtype]),
                                 gguf.GGMLQuantizationType[qtype]).reshape(M, K)
    assert ((r.weight - W) ** 2).sum() <= 1.001 * ((ref - W) ** 2).sum()


def test_gformat_encode_is_refused():
    fam = grids.family("g64b3a")
    r = G.rtn(W, fam.fit, fam.width, fam.concat, fam.round_codes, fam.dequantize)
    with pytest.raises(ValueError, match="no GGUF type"):
        fam.encode(r.grid, r.codes)


def test_dead_columns_and_singular_hessian():
    x = X.clone()
    x[:, 5] = 0  # an input that never fires: H_55 = 0
    h = G.Hessian(K)
    h.add(x)
    fam = grids.family("g32b2a")
    q = G.gptq(W, h.matrix, fam.fit, fam.width, fam.concat)
    assert np.isfinite(q.weight).all()
    low_rank = G.Hessian(K)
    low_rank.add(X[:8])  # rank 8 of 256: only damping makes it invertible
    q = G.gptq(W, low_rank.matrix, fam.fit, fam.width, fam.concat)
    assert np.isfinite(q.weight).all()


def test_bad_arguments():
    fam = grids.family("g64b3a")
    with pytest.raises(ValueError, match="groups of 64"):
        G.gptq(W[:, :100], torch.eye(100, dtype=torch.float64), fam.fit, fam.width, fam.concat)
    with pytest.raises(ValueError, match="h: expected shape"):
        G.gptq(W, torch.eye(8, dtype=torch.float64), fam.fit, fam.width, fam.concat)
    with pytest.raises(ValueError, match="percdamp"):
        G.gptq(W, hessian(), fam.fit, fam.width, fam.concat, percdamp=-1)
    with pytest.raises(ValueError, match="not available|not a grid"):
        grids.family("Q9_Z")


def test_calibration_text_is_disjoint_from_the_perplexity_text():
    from frugalnn.llm.perplexity import TOPICS, reference_text
    from frugalnn.tmac.calibrated import CALIB_TOPICS, calibration_text

    assert not set(CALIB_TOPICS) & set(TOPICS)
    ref, cal = reference_text(), calibration_text()
    windows = {ref[i:i + 48] for i in range(len(ref) - 48)}
    shared = [i for i in range(0, len(cal) - 48, 8) if cal[i:i + 48] in windows]
    assert not shared, cal[shared[0]:shared[0] + 48]


def test_resolve_qtype():
    from frugalnn.tmac.calibrated import resolve_qtype

    assert resolve_qtype(3, 64) == "g64b3a"
    assert resolve_qtype(4) == "Q4_K"
    assert resolve_qtype(2) == "Q2_K"
    assert resolve_qtype(4, qtype="Q4_0") == "Q4_0"
    for bad in (1, 9, 3.0, True, "3"):
        with pytest.raises(ValueError, match="bits"):
            resolve_qtype(bad)
    with pytest.raises(ValueError, match="group_size"):
        resolve_qtype(3, 30)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 256 wide: whole K-quant super-blocks, so Q3_K is Q3_K on every tensor
    return write_tiny_llama(tmp_path_factory.mktemp("gptq") / "tiny.gguf", dim=256, n_heads=4, n_kv_heads=2,
                            ffn=256, vocab=128, ctx=64, n_layers=2)


@pytest.mark.parametrize("qtype", ["g32b2a", "g64b3a", "Q4_0", "Q3_K"])
def test_every_layer_gptq_error_at_most_rtn(tiny, qtype):
    """The invariant, on a tiny random Llama (SmolLM2's run is in test_smollm2_every_layer)."""
    from frugalnn.llm.gguf_file import GGUFModelFile
    from frugalnn.tmac.calibrated import quantize_blocks

    calib = torch.randint(0, 128, (6, 32), generator=torch.Generator().manual_seed(0))
    q = quantize_blocks(GGUFModelFile(tiny), "gptq", qtype, calib)
    assert len(q.layers) == 2 * 7
    for rec in q.layers:
        assert rec.error_gptq <= rec.error_rtn, rec
    assert q.peak_rss_mib is None or q.peak_rss_mib > 0


def test_quantize_returns_a_working_model(tiny):
    from frugalnn import llm as llama
    from frugalnn.tmac import quantize
    from frugalnn.tmac.nn import LUTLinear

    calib = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(1))
    ref = llama.load(tiny, bits="fp32")
    ids = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(2))
    want = ref(ids)
    lut = quantize(tiny, bits=4, group_size=32, method="gptq", calib=calib)
    dense = quantize(tiny, bits=4, group_size=32, method="gptq", calib=calib, dense=True)
    assert isinstance(lut.layers[0].mlp.down, LUTLinear)
    a, b = lut(ids), dense(ids)
    assert torch.isfinite(a).all()
    # the LUT kernel computes the same weights (its int8 activation tables are the only difference)
    assert float((a - b).abs().max()) < 0.05 * float(b.abs().max())
    assert float((b - want).abs().max()) < 0.5 * float(want.abs().max())
    assert len(lut.quantization.layers) == 14


def test_quantize_bad_input(tiny, tmp_path):
    from frugalnn import llm as llama
    from frugalnn.tmac import quantize

    with pytest.raises(FileNotFoundError):
        quantize(tmp_path / "missing.gguf", bits=4, group_size=32)
    with pytest.raises(ValueError, match="method"):
        quantize(tiny, bits=4, group_size=32, method="awq")
    with pytest.raises(ValueError, match="bits"):
        quantize(tiny, bits=1, group_size=32)
    with pytest.raises(ValueError, match="calib"):
        quantize(tiny, bits=4, group_size=32, method="gptq", calib=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids must be in"):
        quantize(tiny, bits=4, group_size=32, method="gptq", calib=torch.full((2, 4), 500))
    rtn = quantize(tiny, bits=4, group_size=32)  # RTN: no calibration, no tokenizer needed
    assert rtn.quantization.method == "rtn"
    with pytest.raises(TypeError, match="GGUF path"):
        quantize(llama.load(tiny, bits="fp32"), bits=4, group_size=32)
