"""`frugalnn bench mixpe`: the W4A8 group GEMM (dequantization after the group sum) against
llama.cpp Q4_0 x Q8_0, our T-MAC 4-bit, torch fp32 on weights dequantized once, and a
dequantize-each-weight kernel; GEMV and GEMM N = 1, 32, 256 at 4096x4096 and 11008x4096, 1 and 2
threads (contenders and checks: frugalnn/mixpe/speed.py). Every row carries its output NMSE
against the fp32 matmul and the bits per weight it holds; llama.cpp absent = a not-measured row.

    frugalnn bench mixpe [--quick] [--threads 1 2] [--repeats 7]
    (benchmarks/bench_mixpe.py runs the same; FRUGALNN_GGML_LIB_DIR points at a libggml when the
    llama_cpp package is not installed in this environment)
"""
from __future__ import annotations

import numpy as np

from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark
from frugalnn.mixpe import speed

SHAPES = ((4096, 4096), (11008, 4096))
TOKENS = (1, 32, 256)
BASELINE = "mixpe w4a8 g128"


@benchmark("mixpe", "MixPE W4A8 group GEMM vs llama.cpp Q4_0, T-MAC 4-bit, torch fp32, dequantize-each-weight")
def bench_mixpe(args: BenchArgs) -> BenchReport:
    from frugalnn import info

    report = BenchReport("mixpe", baseline=BASELINE)
    peer, why = speed.load_peer()
    shapes, tokens = (((1024, 1024),), (1, 32)) if args.quick else (SHAPES, TOKENS)
    rng = np.random.default_rng(0)
    for n_out, k in shapes:
        wf = rng.standard_normal((n_out, k)).astype(np.float32)
        for n in tokens:
            x = np.random.default_rng(1).standard_normal((n, k)).astype(np.float32)
            label = f"{'GEMV' if n == 1 else 'GEMM'} {n_out}x{k} N={n}"
            for threads in args.threads:
                r = speed.race(label, wf, x, threads, args.repeats, peer, why)
                timings = {name: Timing(r.median_s[name], r.min_s[name], [], 1) for name in r.median_s}
                for name, t in timings.items():
                    report.add_case(label, threads, {name: t, BASELINE: timings[BASELINE]} if name != BASELINE
                                    else {name: t},
                                    {"nmse vs fp32": r.nmse_fp32[name], "check nmse": r.check[name],
                                     "bits/weight": round(r.bits[name], 3)})
                for name, reason in r.missing.items():
                    report.add_not_measured(label, name, threads, reason)
    # add_case adds the baseline row again beside every contender: keep one baseline row per case
    seen, rows = set(), []
    for row in report.rows:
        key = (row.case, row.impl, row.threads)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    report.rows = rows
    report.notes.append(
        f"Machine: {info.machine_line()}; llama.cpp: " + (peer.describe() if peer is not None else f"not measured "
                                                           f"({why})") + ". 'x vs mixpe w4a8 g128' = baseline median / "
        "this median (< 1: slower than MixPE). NMSE against x @ W_fp32.T on the same input; 'check nmse' against the "
        "float32 matmul of the weight the contender holds (checked before timing). Weights N(0,1).")
    from frugalnn.kernels import mixpe

    report.meta["mixpe_isa"] = mixpe.isa()
    report.notes.append(
        f"MixPE's kernels run {report.meta['mixpe_isa']} here (vpdpbusd with VNNI, else vpmaddubsw + vpmaddwd). "
        "Rows 'mixpe w4a8 g128 (avx2)' and '(avx512 no VNNI)' time the same kernel under that backend / path in "
        "the same run: baseline median / their median < 1 is the active backend's gain over them.")
    return report
