"""Run experiments, collect their rows, tables and figures, write results.json and index.html."""
from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from frugalnn.report.discover import load_experiments, select
from frugalnn.report.registry import Context, Experiment, ExperimentResult
from frugalnn.report.tables import last_line


@dataclass
class Outcome:
    experiment: Experiment | None
    name: str
    status: str  # "ok" | "failed" | "skipped"
    seconds: float
    result: ExperimentResult = field(default_factory=ExperimentResult)
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
        if not isinstance(result, ExperimentResult):
            raise TypeError(f"experiment {exp.name!r} returned {type(result).__name__}, not ExperimentResult")
        return Outcome(exp, exp.name, "ok", time.perf_counter() - start, result)
    except MissingDataError as e:
        return Outcome(exp, exp.name, "skipped", time.perf_counter() - start, error=str(e))
    except Exception:
        return Outcome(exp, exp.name, "failed", time.perf_counter() - start, error=traceback.format_exc())


class _Bar:
    """rich's live progress bar, for a terminal."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.fields[name]:<16}"), BarColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                                 transient=False)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start(self, exp: Experiment, index: int, total: int) -> Callable[[float, str], None]:
        self.task = self.progress.add_task("starting", total=1.0, name=exp.name)

        def update(fraction: float, message: str = "", task=self.task) -> None:
            self.progress.update(task, completed=fraction, description=message)
        return update

    def import_failed(self, outcome: Outcome) -> None:
        from rich.markup import escape

        self.progress.console.print(f"[bold]{outcome.name:<16}[/] [red]failed[/] {escape(last_line(outcome.error))}")

    def end(self, outcome: Outcome, index: int, total: int) -> None:
        self.progress.update(self.task, completed=1.0, description={
            "ok": "[green]done", "skipped": "[yellow]skipped", "failed": "[red]failed"}[outcome.status])


class _Lines:
    """One plain, flushed line per experiment as it starts and as it ends, for a log or a pipe: a live
    bar writes nothing there until the whole report is over."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} report {text}", file=self.file, flush=True)

    def start(self, exp: Experiment, index: int, total: int) -> Callable[[float, str], None]:
        self._say(f"[{index}/{total}] {exp.name}: started ({exp.title})")
        return lambda fraction, message="": None

    def import_failed(self, outcome: Outcome) -> None:
        self._say(f"{outcome.name}: failed: {last_line(outcome.error)}")

    def end(self, outcome: Outcome, index: int, total: int) -> None:
        why = f": {last_line(outcome.error)}" if outcome.status != "ok" else ""
        self._say(f"[{index}/{total}] {outcome.name}: {outcome.status} in {outcome.seconds:.1f} s{why}")


@contextmanager
def quiet_progress_bars():
    """Silence tqdm bars (transformers' "Converting and de-quantizing GGUF tensors") while experiments
    run: they would interleave with the report's own progress and fill logs. tqdm reads TQDM_DISABLE only
    when it is first imported, so its constructor is wrapped for the duration instead."""
    try:
        from tqdm import std
    except ImportError:
        yield
        return
    original = vars(std.tqdm)["__init__"]  # may be a partialmethod (tqdm's env overrides): restore as is

    def quiet_init(self, *args, **kwargs):
        kwargs["disable"] = True
        original.__get__(self, type(self))(*args, **kwargs)

    std.tqdm.__init__ = quiet_init
    try:
        yield
    finally:
        std.tqdm.__init__ = original


def run_report(only: list[str] | None = None, quick: bool = False, out: Path | None = None,
               seed: int = 0, threads: int | None = None, console=None, summary_console=None) -> list[Outcome]:
    """Run the chosen experiments. Progress goes to `console` (default: stderr): a live bar on a terminal,
    plain start/end lines elsewhere; the summary tables go to `summary_console` (default: stdout)."""
    from rich.console import Console

    from frugalnn import info
    from frugalnn.report import tables

    console = console or Console(stderr=True)
    experiments, import_errors = load_experiments()
    chosen = select(experiments, only)
    outcomes = [Outcome(None, f"import:{m}", "failed", 0.0, error=err) for m, err in import_errors.items()
                if not only or m in only]

    progress = _Bar(console) if console.is_terminal else _Lines(console.file)
    with progress, quiet_progress_bars():
        for o in outcomes:
            progress.import_failed(o)
        for index, exp in enumerate(chosen, 1):
            update = progress.start(exp, index, len(chosen))
            ctx = Context(quick=quick, out_dir=out, seed=seed, threads=threads, progress=update)
            outcome = run_one(exp, ctx)
            outcomes.append(outcome)
            progress.end(outcome, index, len(chosen))

    machine = info.collect(threads)
    machine.setdefault("torch_isa", info.torch_isa())
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "seed": seed, "machine": machine,
            "peers": {name: what for o in outcomes for name, what in o.result.peers.items()}}
    if out is not None:
        write(outcomes, meta, Path(out))
    tables.print_summary(outcomes, console=summary_console or Console())
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
