"""DFP16 GEMM (int16, int32 chunk sums, vpmaddwd) vs torch fp32 matmul on square and ResNet-20 shapes.
Same as `frugalnn bench dfp`.

    python benchmarks/bench_dfp.py [--quick] [--threads 1 2] [--repeats 7] [--shapes square resnet] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["dfp", *sys.argv[1:]]))
