"""The L-Mul benchmark times the same arithmetic in every contender, and its code path runs."""
import numpy as np
import torch

from frugalnn.lmul import lmul_matmul
from frugalnn.lmul import bench
from frugalnn.bench.harness import BenchArgs


def test_naive_emulation_computes_lmul():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 9, 70)).astype(np.float32), rng.standard_normal((2, 70, 13)).astype(np.float32)
    ours = lmul_matmul(a, b, bench.MANTISSA_BITS)
    naive = bench.naive_lmul_matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(naive, ours, rtol=1e-5, atol=1e-5)  # only the summation order differs


def test_benchmark_runs_on_tiny_cases(monkeypatch):
    monkeypatch.setattr(bench, "_cases", lambda quick: [("tiny", 2, 5, 40, 24, True, True),
                                                        ("tiny nt", 1, 7, 33, 9, False, True)])
    report = bench.bench_lmul(BenchArgs(quick=True, threads=[1], repeats=1))
    impls = {r.impl for r in report.rows}
    assert {"torch fp32 matmul", "naive torch emulation", "lmul_matmul (serial)"} <= impls
    assert all(r.median_ms > 0 for r in report.rows)
    assert all("x vs naive" in r.extra for r in report.rows if r.impl.startswith("lmul_matmul"))
    assert "| tiny |" in report.to_markdown()
