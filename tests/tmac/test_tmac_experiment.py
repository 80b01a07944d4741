"""The T-MAC experiment runs in quick mode and returns its rows and tables."""
from frugalnn.tmac.experiment import tmac
from frugalnn.report import Context


def test_tmac_quick():
    result = tmac(Context(quick=True))
    metrics = [r.metric for r in result.rows]
    assert any("latency" in m for m in metrics)
    assert any("table quantization" in m for m in metrics)
    assert len(result.tables) == 2 and result.figures
