"""The L-Mul benchmark times the same arithmetic in every contender, checks it before timing, and runs."""
import numpy as np
import pytest
import torch

from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.lmul import bench, lmul_matmul

TINY = [("tiny", 2, 5, 40, 24, True, True), ("tiny nt", 1, 7, 33, 9, False, True)]


def test_naive_emulation_computes_lmul():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 9, 70)).astype(np.float32), rng.standard_normal((2, 70, 13)).astype(np.float32)
    ours = lmul_matmul(a, b, bench.MANTISSA_BITS)
    naive = bench.naive_lmul_matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(naive, ours, rtol=1e-5, atol=1e-5)  # only the summation order differs


def test_benchmark_runs_on_tiny_cases(monkeypatch):
    monkeypatch.setattr(bench, "_cases", lambda quick: TINY)
    report = bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))
    impls = {r.impl for r in report.rows}
    assert {"torch fp32 matmul", "naive torch emulation", "lmul_matmul (serial)"} <= impls
    assert all(r.median_ms > 0 for r in report.rows)
    assert all("x vs naive" in r.extra for r in report.rows if r.impl.startswith("lmul_matmul"))
    # both sides of the race carry their accuracy against the exact product and their operand bytes
    for r in report.rows:
        assert r.extra["bytes/operand"] == 4
        assert 0 <= r.extra["NMSE vs exact"] < (1e-10 if r.impl == "torch fp32 matmul" else 1e-2)
    assert "| tiny |" in report.to_markdown()


def test_serial_path_above_its_size_limit_is_a_visible_row(monkeypatch):
    monkeypatch.setattr(bench, "_cases", lambda quick: TINY[:1])
    monkeypatch.setattr(bench, "SERIAL_MAX_MACS", 10)
    report = bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))
    skipped = [r for r in report.rows if r.impl == "lmul_matmul (serial)"]
    assert len(skipped) == 1 and skipped[0].median_ms is None and "not measured" in skipped[0].extra


def test_a_kernel_off_by_one_bit_stops_the_benchmark(monkeypatch):
    real = bench.kernels.matmul

    def off_by_one_ulp(*args, impl="native", **kwargs):
        out = real(*args, impl=impl, **kwargs)
        if impl == "native":
            out.reshape(-1).view(np.uint32)[-1] += 1
        return out

    monkeypatch.setattr(bench, "_cases", lambda quick: TINY[:1])
    monkeypatch.setattr(bench.kernels, "matmul", off_by_one_ulp)
    with pytest.raises(CheckFailed, match="mismatched outputs"):
        bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))


def test_a_naive_emulation_with_the_wrong_offset_stops_the_benchmark(monkeypatch):
    real = bench.naive_lmul_matmul
    monkeypatch.setattr(bench, "_cases", lambda quick: TINY[:1])
    monkeypatch.setattr(bench, "naive_lmul_matmul", lambda a, b: real(a, b, offset=5))
    with pytest.raises(CheckFailed, match="naive"):
        bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))


def test_check_helpers():
    assert list(bench.check_rows(1)) == [0]
    rows = bench.check_rows(4096)
    assert len(rows) == bench.CHECK_ROWS and rows[0] == 0 and rows[-1] == 4095
    y = np.array([1.0, -0.0, np.nan], np.float32)
    assert bench.mismatched_outputs(y, y.copy()) == 0
    assert bench.mismatched_outputs(y, np.array([1.0, 0.0, np.nan], np.float32)) == 1  # signed zeros count
    with pytest.raises(ValueError, match="shape"):
        bench.mismatched_outputs(y, y[:2])
    assert bench.scaled_error([1.0, 2.0], [1.0, 2.5], [1.0, 5.0]) == pytest.approx(0.1)
    assert bench.sum_order_bound(1025) == pytest.approx(2 * 1024 * 2.0**-24)



def test_every_vector_backend_is_timed_with_the_target_verdict_and_both_isas(monkeypatch):
    from frugalnn.kernels import available_backends, backend

    monkeypatch.setattr(bench, "_cases", lambda quick: TINY[:1])
    monkeypatch.setattr(bench, "TARGET_CASE", "tiny")
    report = bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))
    vector = [b for b in available_backends() if b != "serial"]
    rows = {r.impl: r for r in report.rows}
    for b in vector:  # avx2 beside avx512 where the CPU has both: the backend's own gain, same run
        assert rows[f"lmul_matmul ({b})"].extra["verdict"].split()[0] in ("meets", "misses")
    assert "verdict" not in rows["torch fp32 matmul"].extra and "verdict" not in rows["lmul_matmul (serial)"].extra
    ours = report.meta["isa"]["ours"]
    assert ours["backend"] == backend() and ours["ops"]["lmul"] in ("avx2", "avx512", "serial")
    assert isinstance(ours["avx512_vnni"], bool) and report.meta["isa"]["peer"]["torch fp32 matmul"]
