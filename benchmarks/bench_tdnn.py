"""EfficientTDNN subnet embedding extraction (Base/Mobile/Small, 3 s): eager vs torch.compile.
Same as `frugalnn bench tdnn`.

    python benchmarks/bench_tdnn.py [--quick] [--threads 1 2] [--repeats 7] [--no-compile] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["tdnn", *sys.argv[1:]]))
