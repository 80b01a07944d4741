"""The T-MAC experiment runs in quick mode: rows, tables, one headline, absent peers as visible rows."""
import pytest

import frugalnn.tmac.experiment as tmac_experiment
from frugalnn.report import Context
from frugalnn.report.verdicts import CLAIM_VERDICTS, NOT_MEASURED


def _check_common(result):
    metrics = [r.metric for r in result.rows]
    assert any("latency" in m for m in metrics)
    assert any("table quantization" in m for m in metrics)
    assert len(result.tables) == 2 and result.figures
    assert sum(r.headline for r in result.rows) == 1
    assert all(r.rule for r in result.rows if r.verdict in CLAIM_VERDICTS)
    torch_rows = [r for r in result.rows if "torch fp32 dense" in r.metric]
    assert len(torch_rows) == 5 and all(r.measured > 0 and "b/w" in r.notes for r in torch_rows)


def test_tmac_quick_without_peer(monkeypatch):
    monkeypatch.setattr(tmac_experiment, "load_peer", lambda: (None, "peer absent in this test"))
    result = tmac_experiment.tmac(Context(quick=True))
    _check_common(result)
    llama = [r for r in result.rows if "llama.cpp" in r.metric]
    assert len(llama) == len(tmac_experiment.RACES)
    assert all(r.verdict == NOT_MEASURED and r.measured is None and "peer absent in this test" in r.notes
               for r in llama)
    head = next(r for r in result.rows if r.headline)
    assert "torch fp32 dense" in head.metric
    assert "peer absent in this test" in result.tables[0].notes


def test_tmac_quick_with_peer_when_installed():
    from frugalnn.bench import ggml_peer

    try:
        ggml_peer.load()
    except ggml_peer.PeerUnavailable as e:
        pytest.skip(f"optional llama.cpp peer: {e}")
    result = tmac_experiment.tmac(Context(quick=True))
    _check_common(result)
    llama = [r for r in result.rows if "llama.cpp" in r.metric]
    assert all(r.verdict != NOT_MEASURED and r.measured > 0 and "llama.cpp" in r.notes for r in llama)
    head = next(r for r in result.rows if r.headline)
    assert "Q2_K" in head.metric
