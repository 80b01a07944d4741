"""L-Mul matmul: our kernel vs naive torch bit-manipulation emulation vs fp32 torch matmul.
Same as `frugalnn bench lmul`.

    python benchmarks/bench_lmul.py [--quick] [--threads 1 2] [--repeats 7] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["lmul", *sys.argv[1:]]))
