"""Figures of the scaling experiment: runtime against flops and against activations, per strategy."""
from __future__ import annotations

import numpy as np

from frugalnn.report import Figure


def runtime_figure(label: str, variants: list[dict], times: dict[str, list[float]], alpha: float,
                   provenance: str) -> Figure:
    """2 x 2 log-log scatter: rows inference / training step, columns MACs / activations;
    `provenance` (machine, threads, kernels: computed by the caller at run time) goes under the title."""
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    from frugalnn.report.figures import figure, pyplot
    from frugalnn.scaling.strategies import STRATEGIES

    strategies = ("base",) + STRATEGIES
    colors = dict(zip(strategies, pyplot().get_cmap("tab10").colors))
    fig, axes = figure(10, 8, nrows=2, ncols=2)
    for row, mode in enumerate(("inference", "training")):
        t = np.asarray(times[mode], float) * 1e3
        for col, (key, xlabel) in enumerate((("macs", "MACs"), ("acts", "activations"))):
            ax = axes[row][col]
            x = np.asarray([v[key] for v in variants], float)
            for strategy in strategies:
                idx = [i for i, v in enumerate(variants) if v["strategy"] == strategy]
                name = f"dWr({alpha})" if strategy == "dWr" else strategy
                ax.scatter(x[idx], t[idx], color=colors[strategy], label=name, s=30,
                           marker="*" if strategy == "base" else "o")
                if strategy != "base":  # connect s = 2, 4, 8, ... of one strategy, from the base
                    path = [0] + idx
                    ax.plot(x[path], t[path], color=colors[strategy], alpha=0.35, linewidth=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis, fmt in ((ax.xaxis, EngFormatter()), (ax.yaxis, EngFormatter())):
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(fmt)
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{mode} ms (1 thread, fastest round)")
            ax.set_title(f"{mode} vs {xlabel}: Pearson r = {np.corrcoef(t, x)[0, 1]:.3f}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7, ncol=3)
    fig.suptitle(f"{label}: CPU runtime of the scaled models vs flops and vs activations\n{provenance}", fontsize=10)
    fig.tight_layout()
    stem = label.split("-like")[0].lower().replace("-", "_")
    return Figure.from_matplotlib(fig, f"runtime_{stem}",
                                  f"{label}: runtime vs MACs and vs activations, one color per scaling strategy")
