"""Run experiments, collect their rows, tables and figures, write results.json and index.html."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from frugalnn.report.discover import load_experiments, select
from frugalnn.report.registry import Context, Experiment, Result


@dataclass
class Outcome:
    experiment: Experiment | None
    name: str
    status: str  # "ok" | "failed" | "skipped"
    seconds: float
    result: Result = field(default_factory=Result)
    error: str = ""

    def to_dict(self, figure_dir: str) -> dict:
        e = self.experiment
        return {
            "name": self.name,
            "technique": e.technique if e else "",
            "title": e.title if e else self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "rows": [r.to_dict() for r in self.result.rows],
            "tables": [t.to_dict() for t in self.result.tables],
            "figures": [{"file": f"{figure_dir}/{self.name}-{f.name}.png", "title": f.title}
                        for f in self.result.figures],
        }


def run_one(exp: Experiment, ctx: Context) -> Outcome:
    from frugalnn.data import MissingDataError

    start = time.perf_counter()
    try:
        result = exp.fn(ctx)
        if not isinstance(result, Result):
            raise TypeError(f"experiment {exp.name!r} returned {type(result).__name__}, not Result")
        return Outcome(exp, exp.name, "ok", time.perf_counter() - start, result)
    except MissingDataError as e:
        return Outcome(exp, exp.name, "skipped", time.perf_counter() - start, error=str(e))
    except Exception:
        return Outcome(exp, exp.name, "failed", time.perf_counter() - start, error=traceback.format_exc())


def run_report(only: list[str] | None = None, quick: bool = False, out: Path | None = None,
               seed: int = 0, threads: int | None = None, console=None) -> list[Outcome]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from frugalnn import info
    from frugalnn.report import tables

    console = console or Console(stderr=True)
    experiments, import_errors = load_experiments()
    chosen = select(experiments, only)
    outcomes = [Outcome(None, f"import:{m}", "failed", 0.0, error=err) for m, err in import_errors.items()
                if not only or m in only]

    with Progress(TextColumn("[bold]{task.fields[name]:<16}"), BarColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        for exp in chosen:
            task = progress.add_task("starting", total=1.0, name=exp.name)

            def update(fraction: float, message: str = "", task=task) -> None:
                progress.update(task, completed=fraction, description=message)

            ctx = Context(quick=quick, out_dir=out, seed=seed, threads=threads, progress=update)
            outcome = run_one(exp, ctx)
            outcomes.append(outcome)
            progress.update(task, completed=1.0,
                            description={"ok": "[green]done", "skipped": "[yellow]skipped",
                                         "failed": "[red]failed"}[outcome.status])

    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "seed": seed,
            "machine": info.collect(threads)}
    if out is not None:
        write(outcomes, meta, Path(out))
    tables.print_summary(outcomes, console=Console())
    return outcomes


def write(outcomes: list[Outcome], meta: dict, out: Path) -> None:
    from frugalnn.report import html

    out.mkdir(parents=True, exist_ok=True)
    figure_dir = "figures"
    (out / figure_dir).mkdir(exist_ok=True)
    for o in outcomes:
        for f in o.result.figures:
            (out / figure_dir / f"{o.name}-{f.name}.png").write_bytes(f.png)
    doc = {"meta": meta, "experiments": [o.to_dict(figure_dir) for o in outcomes]}
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    (out / "index.html").write_text(html.render(outcomes, meta))
