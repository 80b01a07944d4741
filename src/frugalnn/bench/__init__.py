"""`frugalnn bench <name>`: one module per benchmark in this package, registered with `@benchmark`.

Run one from the command line (`frugalnn bench pack`) or as a script (`benchmarks/bench_pack.py`).
"""
from __future__ import annotations

import importlib
import pkgutil

from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, registered, time_interleaved

__all__ = ["BenchArgs", "BenchReport", "benchmark", "load_benchmarks", "time_interleaved"]


def load_benchmarks():
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("harness",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return registered()


def main(argv: list[str] | None = None) -> int:
    """Entry point shared by `frugalnn bench` and the scripts in benchmarks/."""
    from frugalnn.cli import main as cli_main

    return cli_main(["bench", *(argv or [])])
