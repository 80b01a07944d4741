"""Rounding of depths, widths, group widths and resolutions, as pycls does it (models and scalers share it)."""
from __future__ import annotations

import math


def round_depth(depth: int, factor: float) -> int:
    return max(1, round(depth * factor))


def round_width(width: int, factor: float, quantum: int = 8) -> int:
    return max(1, round(width * factor / quantum)) * quantum


def round_group_width(group_width: int, factor: float) -> int:
    g = max(1, round(group_width * factor))
    return g if g <= 2 else 4 if g <= 5 else round(g / 8) * 8


def round_resolution(resolution: int, factor: float, quantum: int = 4) -> int:
    r = round(resolution * factor / quantum) * quantum
    if r < quantum:
        raise ValueError(f"resolution {resolution} x {factor:.3g} rounds to {r}: the scale factor is too small")
    return r


def fit_group_widths(widths: list[int], bottleneck_ratios: list[float],
                     group_widths: list[int]) -> list[int]:
    """Widths whose bottleneck width w*b is a multiple of the stage's group width (pycls's
    adjust_block_compatibility), except that a bottleneck narrower than one group is an error here
    rather than silently shrinking the group width."""
    out = []
    for i, (w, b, g) in enumerate(zip(widths, bottleneck_ratios, group_widths)):
        v = max(1, int(w * b))
        if v < g:
            raise ValueError(f"stage {i + 1}: bottleneck width {v} (width {w} x {b}) is below one group of "
                             f"{g} channels; scale by a larger factor or lower the group width")
        m = math.lcm(g, int(b)) if b > 1 else g
        v = max(m, round(v / m) * m)
        out.append(int(v / b))
    return out
