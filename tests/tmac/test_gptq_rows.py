"""The llm experiment's calibrated-quantization rows (frugalnn.llm.quant_rows): verdicts that can fail, the cache
of quantized weights."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from frugalnn.llm import quant_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from tiny_gguf import write_tiny_llama  # noqa: E402


def run_rows(monkeypatch, ppl_of):
    """quant_rows in quick mode with quantization and perplexity replaced by `ppl_of(label, method)`."""
    calls = []

    def fake_model(path, kw, method, calib, threads):
        label = next(lab for lab, k, _ in quant_rows.CONFIGS if k == kw)
        calls.append((label, method))
        return SimpleNamespace(label=label, method=method), False

    monkeypatch.setattr(quant_rows, "quantized_model", fake_model)
    monkeypatch.setattr("frugalnn.tmac.calibrated.calibration_tokens", lambda tok, s, n: torch.zeros(s, n))
    monkeypatch.setattr("frugalnn.llm.perplexity", lambda fn, ids: SimpleNamespace(
        perplexity=ppl_of(*calls[-1])))
    ctx = SimpleNamespace(quick=True, step=lambda *a: None)
    rows, table = quant_rows.quant_rows(ctx, "unused", None, [1, 2], 10.0, 1)
    return {r.metric: r for r in rows}, table


def test_rows_pass_and_fail_on_the_targets(monkeypatch):
    good, _ = run_rows(monkeypatch, lambda label, method: 10.2 if method == "gptq" else 12.0)
    assert good["perplexity gap, 4-bit g128 GPTQ vs fp32"].verdict == "reproduced"
    assert good["GPTQ perplexity <= RTN, 3-bit g64"].verdict == "reproduced"
    bad, table = run_rows(monkeypatch, lambda label, method: 13.0 if method == "gptq" else 12.0)
    assert bad["perplexity gap, 4-bit g128 GPTQ vs fp32"].verdict == "not reproduced"  # +30% > +3%
    assert bad["perplexity gap, 3-bit g64 GPTQ vs fp32"].verdict == "not reproduced"   # +30% > +25%
    assert bad["GPTQ perplexity <= RTN, 4-bit g128"].verdict == "not reproduced"
    assert bad["perplexity gap, Q3_K GPTQ vs fp32"].verdict == "not measured"  # quick mode says so
    assert len(table) == 4


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path / "cache"))
    tiny = write_tiny_llama(tmp_path / "tiny.gguf", dim=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=128, ctx=64)
    calib = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    kw = dict(bits=3, group_size=32)
    fresh, hit = quant_rows.quantized_model(tiny, kw, "gptq", calib, 1)
    assert not hit
    again, hit = quant_rows.quantized_model(tiny, kw, "gptq", calib, 1)
    assert hit
    ids = torch.tensor([[1, 5, 9, 3]])
    torch.testing.assert_close(again(ids), fresh(ids))
    other, hit = quant_rows.quantized_model(tiny, kw, "rtn", calib, 1)
    assert not hit
