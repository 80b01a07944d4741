"""End-to-end LLM race: our Llama + LUT kernels vs llama.cpp. Same as `frugalnn bench llm`.

    python benchmarks/bench_llm.py [--quick] [--threads 1 2] [--repeats 3] [--only KEY ...] [--make-7b] [--profile] [--json out.json]

The race files are made on this machine and cached under $FRUGALNN_CACHE_DIR/race (--make-7b: ~15 GB).
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["llm", *sys.argv[1:]]))
