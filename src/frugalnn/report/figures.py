"""One place for matplotlib: a headless backend and the figure-to-PNG step every experiment needs.

    fig, ax = figure(7, 4)                 # or figure(10, 4, ncols=2) -> (fig, axes)
    ...
    return Figure.from_matplotlib(fig, "name", "title")   # closes the figure
"""
from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; safe in threads and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(width: float = 7.0, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kwargs):
    """(fig, ax) -- or (fig, axes) for a grid -- on the Agg backend."""
    return pyplot().subplots(nrows, ncols, figsize=(width, height), **kwargs)
