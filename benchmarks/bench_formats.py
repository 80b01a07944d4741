"""Group-wise k-bit packing kernel: avx2 vs serial vs numpy. Same as `frugalnn bench formats`.

    python benchmarks/bench_formats.py [--quick] [--threads 1 2] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["formats", *sys.argv[1:]]))
