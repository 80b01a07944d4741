"""Benchmark conventions: interleaved repeats, medians, ratios against a baseline from the same run.

These machines are shared and noisy, so absolute times drift; a ratio measured in one run with
the contenders interleaved (every repeat times each contender once, in turn) is what we report.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from frugalnn.techniques import Registry


@dataclass
class Timing:
    median_s: float
    min_s: float
    samples_s: list[float]
    calls_per_sample: int


def calibrate(fn: Callable[[], Any], min_sample_s: float) -> int:
    """How many calls make one sample last at least `min_sample_s` (fast kernels are batched)."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_sample_s or n >= 1 << 20:
            return n
        n = max(n * 2, int(n * min_sample_s / max(dt, 1e-9) * 1.2))


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 7, warmup: int = 1,
                     min_sample_s: float = 0.02) -> dict[str, Timing]:
    """Median per-call time of each function; repeats interleave the functions so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    inner = {name: calibrate(fn, min_sample_s) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: Timing(statistics.median(s), min(s), s, inner[name]) for name, s in samples.items()}


@dataclass
class BenchRow:
    case: str
    impl: str
    threads: int
    median_ms: float | None  # None: not measured (see `extra["not measured"]`)
    vs_baseline: float | None  # baseline time / this time: >1 means faster than the baseline
    extra: dict = field(default_factory=dict)


@dataclass
class BenchReport:
    name: str
    baseline: str
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def add_case(self, case: str, threads: int, timings: dict[str, Timing], extra: dict | None = None) -> None:
        """Rows for one case; ratios against this report's baseline measured in the same call."""
        base = timings.get(self.baseline)
        for impl, t in timings.items():
            ratio = base.median_s / t.median_s if base else None
            self.rows.append(BenchRow(case, impl, threads, t.median_s * 1e3, ratio, dict(extra or {})))

    def add_not_measured(self, case: str, impl: str, threads: int, reason: str) -> None:
        """A visible row for a contender that is absent or failed (never a silent gap)."""
        self.rows.append(BenchRow(case, impl, threads, None, None, {"not measured": reason}))

    def to_markdown(self) -> str:
        extra_keys = list(dict.fromkeys(k for r in self.rows for k in r.extra))
        head = ["case", "impl", "threads", "median (ms)", f"x vs {self.baseline}", *extra_keys]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            ratio = "-" if r.vs_baseline is None else f"{r.vs_baseline:.2f}"
            time_ms = "not measured" if r.median_ms is None else f"{r.median_ms:.4g}"
            cells = [r.case, r.impl, str(r.threads), time_ms, ratio,
                     *(_fmt(r.extra.get(k)) for k in extra_keys)]
            lines.append("| " + " | ".join(cells) + " |")
        for n in self.notes:
            lines.append(f"\n{n}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"name": self.name, "baseline": self.baseline, "meta": self.meta, "notes": self.notes,
                "rows": [asdict(r) for r in self.rows]}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class BenchArgs:
    quick: bool = False
    threads: list[int] = field(default_factory=lambda: [1])
    repeats: int = 7
    options: dict = field(default_factory=dict)  # benchmark-specific flags


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    fn: Callable[[BenchArgs], BenchReport]
    add_arguments: Callable | None = None


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def benchmark(name: str, description: str, add_arguments: Callable | None = None) -> Callable:
    """Register `fn(args: BenchArgs) -> BenchReport` as `frugalnn bench <name>` (name = the technique's)."""
    def wrap(fn):
        BENCHMARKS.add(name, Benchmark(name, description, fn, add_arguments), f"{fn.__module__}.{fn.__qualname__}")
        return fn
    return wrap


def registered() -> dict[str, Benchmark]:
    return BENCHMARKS.items()
