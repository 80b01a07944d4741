"""Fused 1-pass attention vs torch SDPA vs a naive 3-pass: every output checked against torch SDPA
(and float64 up to seq 4096) before timing, then time and peak extra memory. Same as
`frugalnn bench fusemax`.

    flock /tmp/frugalnn-bench.lock python benchmarks/bench_fusemax.py --threads 1 [--quick] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["fusemax", *sys.argv[1:]]))
