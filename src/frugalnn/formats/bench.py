"""Group-wise k-bit quantize+pack and unpack+dequantize: AVX2 vs serial vs the numpy reference."""
from __future__ import annotations

import numpy as np

from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved
from frugalnn.kernels import available_backends, pack, use_backend


def _native(fn, backend):
    def call():
        with use_backend(backend):
            fn()
    return call


@benchmark("formats", "group-wise k-bit quantize+pack / unpack+dequantize: avx2 vs serial vs numpy")
def bench_pack(args: BenchArgs) -> BenchReport:
    n, k = (1024, 1024) if args.quick else (4096, 4096)
    group = 128
    w = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
    report = BenchReport("pack", baseline="numpy")
    report.notes.append(f"weight {n}x{k} float32, group {group}, asymmetric; times per whole matrix.")
    for bits in (2, 3, 4, 8):
        packed, scales, offsets = pack.quantize_pack(w, bits, group, False)
        for threads in args.threads:
            for op, run in (
                ("quantize+pack", lambda impl, t: pack.quantize_pack(w, bits, group, False, threads=t, impl=impl)),
                ("unpack+dequantize", lambda impl, t: pack.dequantize_unpack(packed, scales, offsets, bits, group,
                                                                              threads=t, impl=impl)),
            ):
                fns = {"numpy": lambda: run("numpy", threads)}
                for b in available_backends():
                    fns[b] = _native(lambda: run("native", threads), b)
                timings = time_interleaved(fns, repeats=args.repeats)
                report.add_case(f"{op} {bits}-bit", threads, timings)
                for row in report.rows[-len(fns):]:
                    row.extra["GB/s (fp32 side)"] = n * k * 4 / (row.median_ms * 1e-3) / 1e9
    return report
