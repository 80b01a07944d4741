"""The report's console output: one rich table of every experiment's summary rows."""
from __future__ import annotations

from typing import Any

from frugalnn.report.verdicts import DERIVED, MEASURED, NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED

VERDICT_STYLE = {REPRODUCED: "green", PARTLY: "yellow", NOT_REPRODUCED: "red", DERIVED: "magenta", MEASURED: "cyan",
                 NOT_MEASURED: "dim"}


def fmt(v: Any) -> str:
    """Numbers to 4 significant digits (integers in full), text as is, None as a dash."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def last_line(text: str) -> str:
    """The line of a traceback that says what went wrong (its last)."""
    return text.strip().splitlines()[-1] if text.strip() else ""


def _with_unit(v: Any, unit: str) -> str:
    text = fmt(v)
    return f"{text} {unit}" if unit and v is not None and not isinstance(v, str) else text


def print_summary(outcomes, console) -> None:
    """One table per experiment (metric, paper, ours, verdict) so it stays readable at 80 columns."""
    from rich.markup import escape
    from rich.table import Table

    for o in outcomes:
        title = f"{o.experiment.technique} - {o.name}" if o.experiment else o.name
        if o.status != "ok":
            style = "yellow" if o.status == "skipped" else "red"
            console.print(f"[bold]{escape(title)}[/]: [{style}]{o.status}[/] {escape(last_line(o.error))}")
            continue
        t = Table(title=escape(title), title_justify="left", expand=False)
        t.add_column("metric", overflow="fold", ratio=3)
        t.add_column("paper", overflow="fold")
        t.add_column("ours", overflow="fold")
        t.add_column("verdict", overflow="fold")
        for r in o.result.rows:
            style = VERDICT_STYLE.get(r.verdict, "")
            t.add_row(escape(r.metric), escape(_with_unit(r.paper, r.unit)), escape(_with_unit(r.measured, r.unit)),
                      f"[{style}]{r.verdict}[/]")
        console.print(t)
