"""lmul_matmul throughput: our kernel vs a naive torch bit-manipulation emulation vs fp32 torch matmul.

The naive emulation is what public L-Mul ports do in PyTorch: view the operands as int32,
truncate the mantissas, add the bit patterns of every (a[i, k], b[k, j]) pair with the offset,
view the sums as float32 and reduce over k. Broadcasting all pairs at once needs an M*K*N
tensor (4 GiB at 1024^3), so it runs over blocks of rows sized to keep that tensor near
64 MiB, the same memory the user would have to give it. It skips zero/inf/NaN handling (so it
does strictly less work than our kernel) and is checked against our kernel in
tests/bench/test_bench_lmul.py so that the benchmark times the same arithmetic.

    frugalnn bench lmul [--quick] [--threads 1 2]      (benchmarks/bench_lmul.py runs the same)
"""
from __future__ import annotations

import numpy as np

from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved
from frugalnn.kernels import available_backends, lmul as kernels, lmul_ref, use_backend

MANTISSA_BITS = 4
NAIVE_BLOCK_ELEMENTS = 1 << 24  # int32 temporaries of 64 MiB


def naive_lmul_matmul(a, b, mantissa_bits: int = MANTISSA_BITS, offset: int | None = None):
    """Pure-torch L-Mul matmul by broadcasting bit patterns: a [B, M, K] @ b [B, K, N] (float32 tensors)."""
    import torch

    offset = lmul_ref.paper_offset(mantissa_bits) if offset is None else offset
    keep = -(1 << (23 - mantissa_bits))  # int32 mask clearing the dropped mantissa bits
    bias = lmul_ref.offset_bits(offset)
    ia, ib = a.view(torch.int32), b.view(torch.int32)
    sa, sb = ia & (-(1 << 31)), ib & (-(1 << 31))  # sign bits
    ma, mb = (ia & 0x7FFFFFFF) & keep, (ib & 0x7FFFFFFF) & keep
    batch, m, k = a.shape
    n = b.shape[2]
    out = torch.empty(batch, m, n)
    rows = max(1, NAIVE_BLOCK_ELEMENTS // max(1, k * n))
    for e in range(batch):
        for i in range(0, m, rows):
            mag = ma[e, i:i + rows, :, None] + (mb[e, None] - bias)           # [rows, K, N]
            prod = (mag | (sa[e, i:i + rows, :, None] ^ sb[e, None])).view(torch.float32)
            out[e, i:i + rows] = prod.sum(dim=1)
    return out


def _cases(quick: bool):
    """(name, batch, M, K, N, transpose_b, time the naive emulation)."""
    square = (256, 512) if quick else (512, 1024, 2048, 4096)
    cases = [(f"square {n}", 1, n, n, n, False, n <= 1024) for n in square]
    heads, seq = (4, 128) if quick else (12, 512)
    cases += [
        (f"attention QK^T {heads}x{seq}x64", heads, seq, 64, seq, True, True),
        (f"attention PV {heads}x{seq}x{seq}->64", heads, seq, seq, 64, False, True),
        (f"decode QK^T {heads}x1x64 vs {8 * seq} keys", heads, 1, 64, 8 * seq, True, True),
    ]
    return cases


@benchmark("lmul", "L-Mul matmul: our kernel vs naive torch bit-manipulation emulation vs fp32 torch matmul")
def bench_lmul(args: BenchArgs) -> BenchReport:
    import torch

    report = BenchReport("lmul", baseline="torch fp32 matmul")
    report.notes.append(
        f"L-Mul m={MANTISSA_BITS} truncate (paper offset); float32 operands N(0,1). 'x vs torch fp32 matmul' > 1 "
        "means faster than torch's float32 matmul (MKL/oneDNN) at the same thread count; 'x vs naive' compares our "
        "kernel with the naive torch emulation timed in the same run. GMAC/s counts multiply-accumulates.")
    rng = np.random.default_rng(0)
    previous_threads = torch.get_num_threads()
    try:
        for name, batch, m, k, n, transpose_b, with_naive in _cases(args.quick):
            a = rng.standard_normal((batch, m, k)).astype(np.float32)
            b = rng.standard_normal((batch, n, k) if transpose_b else (batch, k, n)).astype(np.float32)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tb_mm = tb.transpose(1, 2) if transpose_b else tb  # [B, K, N] view, as attention passes K^T
            naive_b = tb_mm.contiguous()
            for threads in args.threads:
                torch.set_num_threads(threads)
                fns = {"torch fp32 matmul": lambda: torch.matmul(ta, tb_mm)}
                for backend in available_backends()[::-1]:  # avx2 first when present
                    if backend == "serial" and m * k * n > 1 << 30:
                        continue  # the portable path is a reference, not a contender at 2048^3 and up

                    def ours(backend=backend, threads=threads):
                        with use_backend(backend):
                            kernels.matmul(a, b, MANTISSA_BITS, False, lmul_ref.paper_offset(MANTISSA_BITS),
                                           transpose_b=transpose_b, threads=threads)
                    fns[f"lmul_matmul ({backend})"] = ours
                if with_naive:
                    fns["naive torch emulation"] = lambda: naive_lmul_matmul(ta, naive_b)
                slow = with_naive and m * k * n >= 1 << 28
                timings = time_interleaved(fns, repeats=min(args.repeats, 3) if slow else args.repeats)
                report.add_case(name, threads, timings)
                rows = report.rows[-len(fns):]
                naive = timings.get("naive torch emulation")
                for row in rows:
                    row.extra["GMAC/s"] = batch * m * k * n / (row.median_ms * 1e-3) / 1e9
                    if naive is not None and row.impl.startswith("lmul_matmul"):
                        row.extra["x vs naive"] = naive.median_s / (row.median_ms * 1e-3)
    finally:
        torch.set_num_threads(previous_threads)
    report.meta["torch"] = torch.__version__
    report.meta["mantissa_bits"] = MANTISSA_BITS
    return report
