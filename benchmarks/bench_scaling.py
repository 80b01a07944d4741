"""Counting MACs: frugalnn.cost.profile vs fvcore FlopCountAnalysis vs torch FlopCounterMode, on the
scaled RegNetY / EfficientNet models. Same as `frugalnn bench scaling`.

    python benchmarks/bench_scaling.py [--quick] [--threads 1 2] [--repeats 7] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["scaling", *sys.argv[1:]]))
