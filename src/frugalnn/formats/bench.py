"""`frugalnn bench formats`: group-wise k-bit quantize+pack and unpack+dequantize, our compiled
kernels (each backend) against the numpy reference.

Check before timing: at the benched shape, every backend and thread count must reproduce the numpy
reference (frugalnn.kernels.pack_ref) bit for bit -- packed codes, scales, offsets and the dequantized
weights -- or the benchmark stops (CheckFailed). Each row also carries what the format costs: bits
per weight really stored (codes plus a float32 scale and offset per group) and the dequantized
weight's NMSE against the float32 original (the same for every implementation, as they are bit-exact).

    frugalnn bench formats [--quick] [--threads 1 2]      (benchmarks/bench_formats.py runs the same)
"""
from __future__ import annotations

import numpy as np

from frugalnn import info
from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved
from frugalnn.kernels import available_backends, pack, use_backend

GROUP = 128
BITS = (2, 3, 4, 8)
SHAPE = {True: (1024, 1024), False: (4096, 4096)}  # [N, K] weight, by --quick


def _native(fn, backend):
    def call():
        with use_backend(backend):
            return fn()
    return call


def mismatched(outputs, references) -> int:
    """Elements (of any of the arrays) whose bits differ between two tuples of same-shaped arrays."""
    count = 0
    for y, ref in zip(outputs, references, strict=True):
        y, ref = np.ascontiguousarray(y), np.ascontiguousarray(ref)
        if y.shape != ref.shape or y.dtype != ref.dtype:
            raise ValueError(f"output: expected {ref.dtype} {ref.shape} as the reference, got {y.dtype} {y.shape}")
        count += int(np.count_nonzero(y.view(np.uint8) != ref.view(np.uint8)))
    return count


@benchmark("formats", "group-wise k-bit quantize+pack / unpack+dequantize: our kernels (avx2, serial) vs numpy")
def bench_formats(args: BenchArgs) -> BenchReport:
    n, k = SHAPE[args.quick]
    w = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
    report = BenchReport("formats", baseline="numpy")
    report.notes.append(f"weight {n}x{k} float32 N(0,1), group {GROUP}, asymmetric; times per whole matrix. Every "
                        "backend and thread count was checked bit-exact against the numpy reference "
                        f"(frugalnn.kernels.pack_ref) at this shape before timing. {info.machine_line()}.")
    for bits in BITS:
        ref_packed = pack.quantize_pack(w, bits, GROUP, False, impl="numpy")
        ref_weights = pack.dequantize_unpack(*ref_packed, bits, GROUP, impl="numpy")
        accuracy = {"bits/weight": bits + 2 * 32 / GROUP, "NMSE vs fp32": nmse(ref_weights, w)}
        for threads in args.threads:
            for op, run, reference in (
                ("quantize+pack", lambda impl, t: pack.quantize_pack(w, bits, GROUP, False, threads=t, impl=impl),
                 ref_packed),
                ("unpack+dequantize", lambda impl, t: (pack.dequantize_unpack(*ref_packed, bits, GROUP, threads=t,
                                                                               impl=impl),),
                 (ref_weights,)),
            ):
                case = f"{op} {bits}-bit"
                fns = {"numpy": lambda run=run: run("numpy", threads)}
                for backend in available_backends():
                    fn = _native(lambda run=run: run("native", threads), backend)
                    check_before_timing(case, f"{backend}, {threads} threads", mismatched(fn(), reference), 0,
                                        "mismatched elements vs numpy")
                    fns[backend] = fn
                timings = time_interleaved(fns, repeats=args.repeats)
                report.add_case(case, threads, timings, extra=accuracy)
                for row in report.rows[-len(fns):]:
                    row.extra["GB/s (fp32 side)"] = n * k * 4 / (row.median_ms * 1e-3) / 1e9
    return report
