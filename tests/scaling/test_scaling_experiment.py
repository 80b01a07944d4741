"""The scaling experiment end to end on tiny settings (the real quick mode takes minutes)."""
from frugalnn import info
from frugalnn.report import REPRODUCED, Context
from frugalnn.report.verdicts import CLAIM_VERDICTS
from frugalnn.scaling import experiment as scaling


def test_experiment_runs_on_tiny_settings(monkeypatch):
    monkeypatch.setattr(scaling, "settings",
                        lambda quick: {"resolution": 32, "factors": (2,), "rounds": 1, "warmup": 0, "batch": 2})
    result = scaling.scaling(Context(quick=True))
    metrics = [r.metric for r in result.rows]
    assert sum("Pearson r of runtime" in m for m in metrics) == 4  # 2 bases x (inference, training)
    headline = [r for r in result.rows if r.headline]
    assert len(headline) == 1 and "activations better than flops" in headline[0].metric
    assert headline[0].measured.endswith("of 4")
    assert all(r.rule for r in result.rows if r.verdict in CLAIM_VERDICTS)
    assert all(info.cpu()["model"] in r.notes for r in result.rows if "Pearson" in r.metric)
    assert info.kernel_isa() in headline[0].notes  # computed at run time: says 'serial' under that backend
    equal = next(r for r in result.rows if r.metric.startswith("profile() equals"))
    assert equal.verdict == REPRODUCED and equal.measured == "18 of 18"
    exponents = result.tables[0]
    assert len(exponents.rows) == 16 and {r[1] for r in exponents.rows} >= {"w", "dwr", "dWr(0.8)"}
    w = next(r for r in exponents.rows if r[0] == "RegNetY-400MF-like" and r[1] == "r")
    assert w[4] == 0.0 and w[5] == 0.0  # resolution scaling leaves params alone, exactly
    assert len(result.tables[2].rows) == 18
    assert [f.name for f in result.figures] == ["runtime_efficientnet_b0", "runtime_regnety_400mf"]
    assert all(f.png.startswith(b"\x89PNG") for f in result.figures)
