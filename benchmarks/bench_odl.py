"""ODL batch-1 training step: the compiled engine (fp32/fp16) vs torch eager and torch.compile on
ResNet8 and DS-CNN. Same as `frugalnn bench odl`.

    python benchmarks/bench_odl.py [--quick] [--no-compile] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["odl", *sys.argv[1:]]))
