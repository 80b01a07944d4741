"""The accelerator experiment (fast: the analytical model), the CPU race on a small shape and the
bench registration. The accuracy experiment (SmolLM2 perplexity, ~5 min) runs in `frugalnn report`."""
import numpy as np

from frugalnn.mixpe import accel, speed
from frugalnn.report import Context
from frugalnn.report.verdicts import CLAIM_VERDICTS


def test_accelerator_experiment_rows():
    from frugalnn.mixpe.experiment import mixpe_accelerator

    res = mixpe_accelerator(Context(quick=True))
    claims = [r for r in res.rows if r.verdict in CLAIM_VERDICTS]
    assert len(claims) == 2 and all(r.rule for r in claims)
    per = [r for r in res.rows if ": MixPE-W4A8 speedup vs" in r.metric]
    assert len(per) == len(accel.WORKLOADS) * (len(accel.BASELINES) + 1)
    assert len(res.tables[-1].rows) == len(accel.WHERE_WRONG)


def test_compare_is_consistent():
    r = accel.compare()
    for w in accel.WORKLOADS:
        best = min(r["speedup"][w][b] for b in accel.QUANT_BASELINES)
        assert best > 0
        assert r["speedup"][w]["FP16"] > 1  # MixPE W4A8 beats the fp16 array everywhere
    auth = accel.authors_ratios()
    assert abs(auth["OPT-6.7B"]["ANT"][0] - 4.0) < 1e-9  # their own output: 0.40 / 0.10


def test_race_small_shape():
    rng = np.random.default_rng(0)
    wf = rng.standard_normal((64, 256)).astype(np.float32)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    r = speed.race("small", wf, x, 1, 1, None, "no peer in this test", groups=(128,))
    assert "llama.cpp Q4_0" in r.missing
    assert {"mixpe w4a8 g128", "T-MAC 4-bit g128", "torch fp32 (dequant once)", "dequant each weight"} <= set(r.median_s)
    assert r.nmse_fp32["mixpe w4a8 g128"] < 0.05 and r.bits["mixpe w4a8 g128"] < 4.5


def test_bench_registered():
    from frugalnn.bench import load_benchmarks

    benches, errors = load_benchmarks()
    assert "mixpe" in benches and "mixpe" not in errors


def test_accuracy_rows_from_measurements(monkeypatch):
    """The accuracy experiment's rows and verdicts on given perplexities (the real run takes minutes)."""
    from frugalnn.mixpe import experiment

    ppl = {"fp32": 14.43, "MixPE W4A16 g128": 18.87, "MixPE W4A16 g32": 17.56, "MixPE W4A8 g128": 19.55,
           "MixPE W4A8 g32": 18.29, "T-MAC 4-bit g64 (asym)": 19.27, "T-MAC 4-bit g32 (asym)": 14.44}
    bits = {k: 4.31 for k in ppl}
    monkeypatch.setattr(experiment, "_perplexities", lambda ctx: (ppl, bits))
    monkeypatch.setattr(experiment, "_minilm", lambda ctx: {"MixPE W4A8 g128": 0.955, "T-MAC 4-bit g128 (asym)": 0.95})
    res = experiment.mixpe_accuracy(Context(quick=True))
    by = {r.metric: r for r in res.rows}
    assert by["SmolLM2-135M perplexity, MixPE W4A8 g128"].verdict == "not reproduced"  # +35% > 10%
    cost = by["W4A8 g128 perplexity over W4A16 g128 (int8 activations' cost)"]
    assert cost.verdict == "reproduced" and abs(cost.measured - 3.6) < 0.1
    assert all(r.rule for r in res.rows if r.verdict in CLAIM_VERDICTS)
