"""T-MAC LUT GEMV/GEMM vs torch fp32 (the headline ratio), llama.cpp (ggml_mul_mat) and torch
dequantize+matmul; every contender is checked at the benched shape before it is timed, and reports
its bits per weight and output NMSE vs fp32. Same as `frugalnn bench tmac` (docs/tmac.md).

    flock /tmp/frugalnn-bench.lock python benchmarks/bench_tmac.py [--quick] [--threads 1 2]
        [--shapes all|llama|bitnet] [--bits 2 4 ternary] [--gemm-n 32 256] [--no-peer] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["tmac", *sys.argv[1:]]))
