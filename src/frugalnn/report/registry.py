"""The experiment registry: what an experiment returns and how a technique registers one.

An experiment is a function `fn(ctx: Context) -> ExperimentResult` registered with `@experiment(...)`
in its technique's `frugalnn.<technique>.experiment` module. It returns summary rows (the paper's
claim beside our measurement, with a verdict from `frugalnn.report.verdicts` and the rule that
gave it), optional detail tables, and optional matplotlib figures.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from frugalnn.report.verdicts import CLAIM_VERDICTS, MEASURED, VERDICTS
from frugalnn.techniques import Registry, technique_of


@dataclass
class Row:
    technique: str
    experiment: str
    metric: str
    paper: Any  # the paper's number (or text); None when the paper states none
    measured: Any
    unit: str = ""
    verdict: str = MEASURED
    notes: str = ""
    rule: str = ""  # the threshold that gave the verdict (frugalnn.report.verdicts)
    headline: bool = False  # the technique's headline figure, shown on its card in index.html

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")
        if self.verdict in CLAIM_VERDICTS and not self.rule:
            raise ValueError(f"rule: a {self.verdict!r} row must state its rule ({self.metric!r}); "
                             "use frugalnn.report.verdicts")

    def to_dict(self) -> dict:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: str = ""

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "notes": self.notes,
                "rows": [[_jsonable(v) for v in r] for r in self.rows]}


@dataclass
class Figure:
    name: str  # file stem, e.g. "format_snr"
    title: str
    png: bytes

    @classmethod
    def from_matplotlib(cls, fig, name: str, title: str = "", dpi: int = 110) -> "Figure":
        from frugalnn.report.figures import pyplot

        plt = pyplot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return cls(name, title, buf.getvalue())


@dataclass
class ExperimentResult:
    rows: list[Row] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    # what each peer reported about itself in this run, e.g. {"llama.cpp": {"version": ..., "isa": "AVX2 FMA"}};
    # shown in index.html's machine section and results.json's meta
    peers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    quick: bool = False
    out_dir: Path | None = None
    seed: int = 0
    threads: int | None = None
    progress: Callable[[float, str], None] = lambda fraction, message="": None

    def step(self, fraction: float, message: str = "") -> None:
        """Report progress of the running experiment (0..1) with a short message."""
        self.progress(min(max(fraction, 0.0), 1.0), message)


@dataclass(frozen=True)
class Experiment:
    name: str
    technique: str  # the package: frugalnn.<technique>.experiment
    title: str
    fn: Callable[[Context], ExperimentResult]
    module: str


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def experiment(name: str, title: str) -> Callable:
    """Register `fn(ctx) -> ExperimentResult` under `name` (what `frugalnn report --only` matches, with
    the technique's name)."""
    def wrap(fn: Callable[[Context], ExperimentResult]) -> Callable[[Context], ExperimentResult]:
        technique = technique_of(fn.__module__)
        EXPERIMENTS.add(name, Experiment(name, technique, title, fn, fn.__module__), fn.__module__ + "." + fn.__qualname__)
        return fn
    return wrap


def registered() -> dict[str, Experiment]:
    return EXPERIMENTS.items()


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
