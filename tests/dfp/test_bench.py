"""`frugalnn bench dfp`: its checks refuse wrong answers, its shapes are ResNet-20's, the torch AVX2
worker answers, and a tiny run produces complete rows."""
import numpy as np
import pytest

from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.dfp import bench
from frugalnn.kernels import dfp, other_backends


def test_resnet20_shapes_are_the_network_gemms():
    shapes = {c.name.split(" (")[0]: (c.m, c.k, c.n, c.transpose_b) for c in bench.resnet20_shapes(8)}
    assert shapes["resnet20 stage1 conv fwd, im2col"] == (16, 144, 8 * 28 * 28, False)
    assert shapes["resnet20 stage2 conv fwd, im2col"] == (32, 288, 8 * 14 * 14, False)
    assert shapes["resnet20 stage3 conv fwd, im2col"] == (64, 576, 8 * 7 * 7, False)
    p1, p3 = 8 * 28 * 28, 8 * 7 * 7
    assert shapes["resnet20 stage1 fwd as nn.py"] == (p1, 144, 16, True)
    assert shapes["resnet20 stage1 input grad as nn.py"] == (p1, 16, 144, False)
    assert shapes["resnet20 stage3 weight grad as nn.py"] == (64, p3, 576, False)
    assert len(shapes) == 9


@pytest.mark.parametrize("transpose_b", [False, True])
def test_checks_refuse_wrong_answers(transpose_b):
    a, b = bench.make_operands(20, 300, 30, seed=1)
    qa, qb = dfp.quantize(a), dfp.quantize(np.ascontiguousarray(b.T) if transpose_b else b)
    y = dfp.gemm(qa.mantissa, qb.mantissa, int(qa.exponent[0]), int(qb.exponent[0]), transpose_b=transpose_b)
    bench.check_ours("t", qa, qb, y, 31, transpose_b)
    bad = y.copy()
    bad.view(np.uint32)[3, 4] += 1  # one ulp: no longer the reference's bits
    with pytest.raises(CheckFailed, match="bit mismatches vs dfp_ref"):
        bench.check_ours("t", qa, qb, bad, 31, transpose_b)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    ratio, err = bench.torch_error(a, b, (a @ b), exact)
    assert ratio <= 1 and 0 < err < 1e-12
    ratio, _ = bench.torch_error(a, b, (a @ b) * np.float32(1 + 2.0**-10), exact)
    assert ratio > 1  # a float32 matmul this far off violates the K u |A||B| bound


def test_tiny_run_has_complete_rows():
    """The whole bench at batch 1: both torch workers (the AVX2 one where torch would run AVX-512)."""
    import torch
    args = BenchArgs(quick=True, threads=[1], repeats=1, options={"shapes": ["resnet"], "batch": 1, "sample_ms": 2})
    report = bench.bench_dfp(args)
    cases = {r.case for r in report.rows}
    isa = torch.backends.cpu.get_cpu_capability()
    contenders = 3 if isa.upper() in ("AVX2", "DEFAULT", "NO AVX") else 4
    # the GEMM again under the other vectorised backends, and on a VNNI CPU its AVX512BW path (issue 17)
    ours = {f"dfp16 gemm ({b})": b for b in other_backends()}
    if dfp.isa().endswith("VNNI"):
        ours["dfp16 gemm (avx512 no VNNI)"] = "avx512 (AVX512BW, no VNNI)"
    contenders += len(ours)
    assert len(cases) == 9 and len(report.rows) == 9 * contenders
    for r in report.rows:
        want = {"torch fp32 matmul": isa, "torch fp32 matmul, AVX2": "AVX2", **ours}.get(r.impl, dfp.isa())
        assert r.extra["ISA"] == want
        assert r.median_ms > 0 and r.vs_baseline > 0
        assert {"GMAC/s", "% fp32 peak", "NMSE vs fp64", "bytes/value", "ISA", "shape MxKxN", "x (best times)"} <= set(r.extra)
        assert r.extra["bytes/value"] == (4.0 if r.impl.startswith("torch") else pytest.approx(2.0, abs=0.01))
        assert r.extra["NMSE vs fp64"] < (1e-12 if r.impl.startswith("torch") else 1e-6)
    assert report.meta["chunk"] == 31 and report.meta["fp32_fma_peak_gmacs_per_core"] > 0
    with pytest.raises(ValueError, match="--batch: expected >= 1, got 0"):
        bench.bench_dfp(BenchArgs(threads=[1], repeats=1, options={"shapes": ["resnet"], "batch": 0}))
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"--sample-ms: expected > 0, got {bad}"):
            bench.bench_dfp(BenchArgs(threads=[1], repeats=1, options={"shapes": ["resnet"], "sample_ms": bad}))
