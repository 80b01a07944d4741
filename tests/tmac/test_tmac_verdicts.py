"""The T-MAC experiment's verdict rules can fail, and its rows keep absent peers visible (no timing here)."""
import pytest

from frugalnn.bench.harness import Timing
from frugalnn.report.verdicts import MEASURED, NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED
from frugalnn.tmac.bench import TABLE_NMSE_BOUND, Race
from frugalnn.tmac.experiment import RACES, race_rows, speedup_verdict, table_quantization_verdict

Q2K_CLAIM = RACES[0][2]  # 0.60 / 0.22 ms: llama.cpp Q2_K over T-MAC 2-bit in the paper


def test_speedup_verdict_fails_below_half_the_claim():
    assert Q2K_CLAIM == pytest.approx(2.727, abs=1e-3)
    assert speedup_verdict(1.0, Q2K_CLAIM, paper_shape=True)["verdict"] == NOT_REPRODUCED
    assert speedup_verdict(0.5 * Q2K_CLAIM + 0.01, Q2K_CLAIM, paper_shape=True)["verdict"] == PARTLY
    assert speedup_verdict(0.9 * Q2K_CLAIM + 0.01, Q2K_CLAIM, paper_shape=True)["verdict"] == REPRODUCED
    assert "2.455" in speedup_verdict(1.0, Q2K_CLAIM, paper_shape=True)["rule"]  # the threshold is in the row


def test_speedup_off_the_papers_shape_or_without_a_figure_is_only_measured():
    assert speedup_verdict(1.0, Q2K_CLAIM, paper_shape=False)["verdict"] == MEASURED
    assert speedup_verdict(9.0, None, paper_shape=True)["verdict"] == MEASURED


def test_table_quantization_verdict_fails_above_its_bound():
    assert table_quantization_verdict(TABLE_NMSE_BOUND * 10)["verdict"] == NOT_REPRODUCED
    assert table_quantization_verdict(TABLE_NMSE_BOUND / 10)["verdict"] == REPRODUCED


def _race(ms: dict, missing: dict | None = None) -> Race:
    r = Race("GEMV 4096x4096", 1)
    for name, t in ms.items():
        r.timings[name] = Timing(t * 1e-3, t * 1e-3, [t * 1e-3], 1)
        r.bits_per_weight[name] = 2.5
        r.nmse_vs_fp32[name] = 0.1
        r.check_nmse[name] = 1e-5
    r.not_measured.update(missing or {})
    return r


OURS = {"torch fp32": 10.0, "lut 1-bit": 0.2, "lut 2-bit": 0.3, "lut 3-bit": 0.45, "lut 4-bit": 0.6, "lut ternary": 0.3}


def test_absent_peer_rows_stay_and_the_headline_falls_back_to_torch():
    missing = {f"llama.cpp {qt}": "not installed" for _, qt, _ in RACES}
    rows = race_rows(_race(OURS, missing), 4096, 4096, "llama.cpp not measured")
    absent = [r for r in rows if r.verdict == NOT_MEASURED]
    assert len(absent) == len(RACES) and all(r.measured is None and "not installed" in r.notes for r in absent)
    heads = [r for r in rows if r.headline]
    assert len(heads) == 1 and "torch fp32 dense" in heads[0].metric and "2-bit" in heads[0].metric
    assert heads[0].measured == pytest.approx(10.0 / 0.3)


def test_slow_kernel_at_the_papers_shape_is_not_reproduced_and_headlines():
    ms = {**OURS, "llama.cpp Q2_K": 0.33, "llama.cpp Q3_K": 0.5, "llama.cpp Q4_0": 1.2, "llama.cpp TQ2_0": 0.4}
    rows = race_rows(_race(ms), 4096, 4096, "llama.cpp = test")
    q2k = next(r for r in rows if "Q2_K" in r.metric)
    assert q2k.verdict == NOT_REPRODUCED and q2k.headline and q2k.rule
    assert q2k.measured == pytest.approx(1.1)
    assert "2.5 b/w" in q2k.notes and "NMSE 0.1" in q2k.notes  # both sides' bits and accuracy
    q40 = next(r for r in rows if "Q4_0" in r.metric)
    assert q40.verdict == REPRODUCED  # 1.2 / 0.6 = 2.0 >= 0.9 x 1.61
    assert sum(r.headline for r in rows) == 1


def test_a_peer_slower_on_more_threads_than_on_one_gets_no_verdict():
    """ggml's threadpool spins for a worker whose core is held elsewhere: its 2-thread time then rises many-fold and
    a 'meets' against it says nothing about the kernels (seen on the shared 2-core machine: 6-35x)."""
    from frugalnn.bench.harness import BenchReport
    from frugalnn.tmac.bench import _add_rows, impl_name

    def race(threads, ours_ms, peer_ms):
        r = Race("GEMV 4096x4096", threads)
        for name, t in ((impl_name(2), ours_ms), ("llama.cpp Q2_K", peer_ms), ("torch fp32", 10.0)):
            r.timings[name] = Timing(t * 1e-3, t * 1e-3, [t * 1e-3], 1)
            r.bits_per_weight[name], r.nmse_vs_fp32[name], r.check_nmse[name] = 2.5, 0.1, 0.0
        return r

    report, one = BenchReport("tmac", baseline="torch fp32"), {}
    _add_rows(report, race(1, 1.0, 2.5), [2], "GEMV 4096x4096", one)
    _add_rows(report, race(2, 0.6, 20.0), [2], "GEMV 4096x4096", one)      # the peer took 8x its 1-thread time
    _add_rows(report, race(2, 0.6, 1.0), [2], "GEMV 4096x4096", one)       # the peer scaled: a real verdict
    verdicts = [row.extra["verdict"] for row in report.rows if row.impl == impl_name(2)]
    assert verdicts[0] == "meets >= 2x vs Q2_K"
    assert verdicts[1].startswith("not usable: llama.cpp Q2_K took 8.0x its 1-thread time on 2 threads")
    assert verdicts[2] == "misses >= 2x vs Q2_K"
