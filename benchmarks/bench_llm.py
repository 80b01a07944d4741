"""End-to-end LLM race: our Llama + LUT kernels vs llama.cpp. Same as `frugalnn bench llm`.

    python benchmarks/bench_llm.py [--quick] [--threads 1 2] [--repeats 3] [--peer-models DIR] [--json out.json]
"""
import sys

from frugalnn.bench import main

if __name__ == "__main__":
    sys.exit(main(["llm", *sys.argv[1:]]))
