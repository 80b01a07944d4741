"""Delta-inference engine vs torch dense per-frame inference, batch 1, 32-frame clips, across densities.
Same as `frugalnn bench delta`.

    python benchmarks/bench_delta.py [--quick] [--threads 1] [--repeats 7] [--steps 0.05 0.2 0.8] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["delta", *sys.argv[1:]]))
