"""Group-wise k-bit packing kernel: avx2 vs serial vs numpy. Same as `frugalnn bench pack`.

    python benchmarks/bench_pack.py [--quick] [--threads 1 2] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["pack", *sys.argv[1:]]))
