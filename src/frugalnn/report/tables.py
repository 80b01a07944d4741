"""The report's console output: one rich table of every experiment's summary rows."""
from __future__ import annotations

from typing import Any

VERDICT_STYLE = {"reproduced": "green", "not reproduced": "red", "partly reproduced": "yellow", "measured": "cyan"}


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


def print_summary(outcomes, console) -> None:
    from rich.table import Table

    t = Table(title="frugalnn report", show_lines=False)
    for col in ("technique", "experiment", "metric", "paper", "ours", "unit", "verdict"):
        t.add_column(col, overflow="fold")
    for o in outcomes:
        if o.status != "ok":
            style = "yellow" if o.status == "skipped" else "red"
            last = o.error.strip().splitlines()[-1] if o.error.strip() else ""
            t.add_row(o.experiment.technique if o.experiment else "", o.name, f"[{style}]{o.status}[/]: {last}",
                      "", "", "", f"[{style}]{o.status}[/]")
            continue
        for r in o.result.rows:
            style = VERDICT_STYLE.get(r.verdict, "")
            t.add_row(r.technique, r.experiment, r.metric, fmt(r.paper), fmt(r.measured), r.unit,
                      f"[{style}]{r.verdict}[/]")
    console.print(t)
