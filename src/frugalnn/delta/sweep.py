"""What the two delta experiments (delta_sparsity, delta_video) share when they turn a rate sweep into
rows: which model the headline takes, the threshold run at matched density, the density verdict, and
the Pareto figure."""
from __future__ import annotations

import numpy as np

from frugalnn.report import Figure
from frugalnn.report.figures import figure
from frugalnn.report.verdicts import at_least, holds


def pick(rows: list[dict], base: float, key: str, max_loss: float) -> tuple[dict, bool]:
    """(chosen, within): the lowest-density row whose `key` is at most `max_loss` below `base`, or, when
    none is, the row with the best `key` (and within False)."""
    ok = [r for r in rows if base - r[key] <= max_loss]
    if ok:
        return min(ok, key=lambda r: r["density"]), True
    return max(rows, key=lambda r: r[key]), False


def matched(rows: list[dict], density: float) -> dict:
    """The row whose density is nearest `density` on a log scale."""
    return min(rows, key=lambda r: abs(np.log(max(r["density"], 1e-9)) - np.log(max(density, 1e-9))))


def density_verdict(ratio: float, ok: bool, why_not: str) -> dict:
    """>= 3x lower density (the paper's claim) when the loss rule held; else a failed verdict saying why."""
    return at_least(ratio, 3.0, full=1.0, partly=0.5) if ok else holds(False, why_not)


def pareto(base: dict, deltas: list[dict], thr: list[dict], key: str, ylabel: str, title: str, name: str,
           caption: str, base_label: str, hline: float | None = None, hline_label: str = "") -> Figure:
    """Metric `key` against density (log): the dense model, the trained delta models (labelled by rate),
    the threshold-only sweep."""
    fig, ax = figure(7, 4.5)
    ax.scatter([base["density"]], [base[key]], marker="s", color="k", label=base_label)
    d = sorted(deltas, key=lambda r: r["density"])
    ax.plot([r["density"] for r in d], [r[key] for r in d], "o-", color="tab:red", label="delta model, trained (temporal)")
    for r in d:
        ax.annotate(f"rate {r['rate']:g}", (r["density"], r[key]), fontsize=7)
    t = sorted(thr, key=lambda r: r["density"])
    ax.plot([r["density"] for r in t], [r[key] for r in t], "^--", color="tab:blue",
            label="threshold only, no training (temporal)")
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls=":", label=hline_label)
    ax.set_xscale("log")
    ax.set_xlabel("activation density (nonzero fraction; log)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    return Figure.from_matplotlib(fig, name, caption)
