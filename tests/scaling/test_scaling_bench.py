"""`frugalnn bench scaling`: end to end in quick mode, counts checked before timing, fvcore absent or failing
shown as a row."""
import json

import pytest

from frugalnn.bench import main
from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.scaling import bench


def test_bench_scaling_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench-scaling.json"
    assert main(["scaling", "--quick", "--threads", "1", "--repeats", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["name"] == "scaling" and doc["baseline"] == bench.BASELINE
    assert doc["meta"]["machine"]["cpu"]["model"] and doc["meta"]["torch_isa"]
    cases = {r["case"] for r in doc["rows"]}
    assert len(cases) == len(bench._cases(quick=True))
    for case in cases:
        rows = {r["impl"]: r for r in doc["rows"] if r["case"] == case}
        assert set(rows) == {bench.BASELINE, bench.PROFILE, bench.FAKE, bench.FORWARD, bench.FVCORE}
        assert rows[bench.BASELINE]["vs_baseline"] == 1.0
        assert all(r["median_ms"] > 0 for r in rows.values())
        assert rows[bench.PROFILE]["extra"]["counts checked"] == "MACs, params, acts exact"
        assert rows[bench.FVCORE]["extra"]["counts checked"] == "MACs exact"
    assert "| frugalnn profile |" in capsys.readouterr().out


@pytest.fixture
def tiny_case(monkeypatch):
    monkeypatch.setattr(bench, "_cases", lambda quick: [("regnety-200mf", 32, "base", 1)])


def test_absent_fvcore_is_a_visible_row(tiny_case, monkeypatch):
    monkeypatch.setattr(bench, "load_fvcore", lambda: (None, "fvcore not installed (test)"))
    report = bench.bench_scaling(BenchArgs(quick=True, threads=[1], repeats=1))
    missing = [r for r in report.rows if r.impl == bench.FVCORE]
    assert len(missing) == 1 and missing[0].median_ms is None
    assert missing[0].extra["not measured"] == "fvcore not installed (test)"
    assert "not measured" in report.to_markdown()


def test_failing_fvcore_is_a_visible_row(tiny_case, monkeypatch):
    class Broken:
        def FlopCountAnalysis(self, model, x):
            raise RuntimeError("trace failed")

    monkeypatch.setattr(bench, "load_fvcore", lambda: (Broken(), ""))
    report = bench.bench_scaling(BenchArgs(quick=True, threads=[1], repeats=1))
    row = next(r for r in report.rows if r.impl == bench.FVCORE)
    assert row.median_ms is None and "trace failed" in row.extra["not measured"]
    assert {r.impl for r in report.rows if r.median_ms is not None} == {bench.BASELINE, bench.PROFILE, bench.FAKE,
                                                                         bench.FORWARD}


def test_a_wrong_count_stops_the_bench_before_timing():
    from frugalnn import models

    closed = models.config("regnety-200mf", resolution=32).complexity()
    right = {bench.BASELINE: lambda: 2 * closed.macs, bench.FVCORE: lambda: (closed.macs + 7, {"conv": closed.macs,
                                                                                               "batch_norm": 7})}
    checked, failed = bench.check_counts("tiny", right, closed)
    assert checked == {bench.BASELINE: "MACs exact", bench.FVCORE: "MACs exact"} and not failed
    with pytest.raises(CheckFailed, match="torch FlopCounterMode"):
        bench.check_counts("tiny", {bench.BASELINE: lambda: 2 * closed.macs + 2}, closed)
    with pytest.raises(CheckFailed, match="fvcore"):  # an op whose convention we do not know is not compared
        bench.check_counts("tiny", {bench.FVCORE: lambda: (closed.macs, {"conv": closed.macs, "upsample": 3})}, closed)
    with pytest.raises(ValueError, match="no count check"):
        bench.count_errors("someone else's counter", 0, closed)
