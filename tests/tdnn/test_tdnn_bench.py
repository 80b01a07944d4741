"""`frugalnn bench tdnn`: a quick eager run produces complete rows with the paper's MACs."""
from frugalnn.bench.harness import BenchArgs
from frugalnn.tdnn import bench


def test_quick_bench_rows():
    report = bench.bench_tdnn(BenchArgs(quick=True, threads=[1], repeats=1, options={"no_compile": True}))
    impls = {r.impl: r for r in report.rows}
    assert set(impls) == {"Base eager", "Small eager"}
    assert impls["Base eager"].vs_baseline == 1.0
    assert impls["Small eager"].extra["MACs"] == "204 M" and impls["Base eager"].extra["MACs"] == "1445 M"
    assert impls["Small eager"].median_ms > 0 and "audio s per s" in impls["Small eager"].extra
    assert "Base eager" in report.to_markdown()
