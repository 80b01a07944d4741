"""`frugalnn bench formats` checks every backend bit for bit against the numpy reference before it times."""
import numpy as np
import pytest

from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.formats import bench


def test_benchmark_runs_and_carries_the_cost_of_the_format(monkeypatch):
    monkeypatch.setattr(bench, "SHAPE", {True: (8, 256)})
    report = bench.bench_formats(BenchArgs(quick=True, threads=[1], repeats=1))
    assert report.name == "formats"
    assert {r.case for r in report.rows} == {f"{op} {b}-bit" for op in ("quantize+pack", "unpack+dequantize")
                                             for b in bench.BITS}
    for r in report.rows:
        bits = int(r.case.split()[-1].split("-")[0])
        assert r.extra["bits/weight"] == bits + 0.5 and r.median_ms > 0
    nmse = {r.case: r.extra["NMSE vs fp32"] for r in report.rows if r.impl == "numpy"}
    assert nmse["quantize+pack 8-bit"] < nmse["quantize+pack 4-bit"] < nmse["quantize+pack 2-bit"] < 0.5


def test_a_kernel_that_differs_from_the_reference_stops_the_benchmark(monkeypatch):
    real = bench.pack.quantize_pack

    def one_scale_off(*args, impl="native", **kwargs):
        packed, scales, offsets = real(*args, impl=impl, **kwargs)
        if impl == "native":
            scales = scales.copy()
            scales[0, 0] = np.nextafter(scales[0, 0], np.float32(np.inf))
        return packed, scales, offsets

    monkeypatch.setattr(bench, "SHAPE", {True: (8, 256)})
    monkeypatch.setattr(bench.pack, "quantize_pack", one_scale_off)
    with pytest.raises(CheckFailed, match="quantize\\+pack 2-bit"):
        bench.bench_formats(BenchArgs(quick=True, threads=[1], repeats=1))


def test_mismatched_counts_differing_elements():
    a = (np.arange(4, dtype=np.uint8), np.ones(3, np.float32))
    assert bench.mismatched(a, tuple(x.copy() for x in a)) == 0
    assert bench.mismatched((a[0], np.array([1, 1, -1], np.float32)), a) > 0
    with pytest.raises(ValueError, match="reference"):
        bench.mismatched((a[0], a[1][:2]), a)
