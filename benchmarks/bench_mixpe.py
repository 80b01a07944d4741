"""MixPE W4A8 group GEMM vs llama.cpp Q4_0 x Q8_0, T-MAC 4-bit, torch fp32 and a dequantize-each-weight
kernel, GEMV and GEMM at 4096x4096 and 11008x4096. Same as `frugalnn bench mixpe`.

    python benchmarks/bench_mixpe.py [--quick] [--threads 1 2] [--repeats 7] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["mixpe", *sys.argv[1:]]))
