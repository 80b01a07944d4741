"""The bench harness: `frugalnn bench <technique>` runs the benchmark that the technique's
`bench.py` registers with `@benchmark`.

Run one from the command line (`frugalnn bench tmac`) or as a script (`benchmarks/bench_tmac.py`).
"""
from __future__ import annotations

from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, registered, time_interleaved

__all__ = ["BenchArgs", "BenchReport", "benchmark", "load_benchmarks", "time_interleaved"]


def load_benchmarks():
    """(benchmarks by name, import errors by technique): a technique whose bench.py fails to import
    is named by `frugalnn bench`, never a crash of the CLI."""
    from frugalnn.techniques import discover

    errors = discover("bench")
    return registered(), errors


def main(argv: list[str] | None = None) -> int:
    """Entry point shared by `frugalnn bench` and the scripts in benchmarks/."""
    from frugalnn.cli import main as cli_main

    return cli_main(["bench", *(argv or [])])
