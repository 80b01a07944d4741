"""The experiment registry: what an experiment returns and how a technique registers one.

An experiment is a function `fn(ctx: Context) -> Result` registered with `@experiment(...)` in a
module of `frugalnn.experiments`. It returns summary rows (the paper's claim beside our
measurement, with a verdict), optional detail tables, and optional matplotlib figures.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

# Verdicts, from the reader's point of view.
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
PARTLY = "partly reproduced"
MEASURED = "measured"  # a figure with no claim to hold it against
VERDICTS = (REPRODUCED, NOT_REPRODUCED, PARTLY, MEASURED)


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

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")

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
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return cls(name, title, buf.getvalue())


@dataclass
class Result:
    rows: list[Row] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


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
    technique: str
    title: str
    fn: Callable[[Context], Result]
    module: str


_REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, technique: str, title: str) -> Callable:
    """Register `fn(ctx) -> Result` under `name` (what `frugalnn report --only` matches)."""
    def wrap(fn: Callable[[Context], Result]) -> Callable[[Context], Result]:
        if name in _REGISTRY and _REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"experiment {name!r} is registered twice ({_REGISTRY[name].module}, {fn.__module__})")
        _REGISTRY[name] = Experiment(name, technique, title, fn, fn.__module__)
        return fn
    return wrap


def registered() -> dict[str, Experiment]:
    return dict(_REGISTRY)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
