"""Model scaling strategies of "Fast and Accurate Model Scaling" (Dollar, Singh, Girshick, CVPR'21).

Scaling a network's flops by s splits s over depth d, width w and resolution r. With flops shares
e_d + e_w + e_r = 1, the multipliers are d * s^e_d, w * s^(e_w/2), r * s^(e_r/2), because a conv
stage costs f ~ d w^2 r^2. The same stage has params p ~ d w^2 and activations a ~ d w r^2, so a
strategy moves them by p ~ s^(e_d + e_w) and a ~ s^(e_d + e_w/2 + e_r): width scaling is the one
that keeps activations (and, on memory-bound hardware, runtime) low.

    strategy  e_d        e_w    e_r        params      acts
    d         1          0      0          s           s
    w         0          1      0          s           s^1/2
    r         0          0      1          1           s
    dw        1/2        1/2    0          s           s^3/4
    dr        1/2        0      1/2        s^1/2       s
    wr        0          1/2    1/2        s^1/2       s^3/4
    dwr       1/3        1/3    1/3        s^2/3       s^5/6
    dWr(a)    (1-a)/2    a      (1-a)/2    s^(1+a)/2   s^(1-a/2)    (a=0.8: s^0.9, s^0.6)

Rounding follows pycls (pycls/models/scaler.py): depths to integers >= 1, widths to multiples of 8,
resolution to multiples of 4; group widths (RegNet) scale with width by default, as pycls's fast
compound scaling "d1_w8_g8_r1" does (so a grouped conv keeps f ~ w^2), snapped to 1, 2, 4 or a
multiple of 8, and bottleneck widths are then made a multiple of their group width. Python's
round() (half to even) is used, as in pycls. Rounding makes the achieved flops factor inexact:
`achieved(base, scaled)` reports it.

Each config type registers how it applies the factors (`register_scaler`), so this module does not
import the model families.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable

from frugalnn.models.rounding import (fit_group_widths, round_depth, round_group_width,  # noqa: F401
                                     round_resolution, round_width)

STRATEGIES = ("d", "w", "r", "dw", "dr", "wr", "dwr", "dWr")


@dataclass(frozen=True)
class ScaleFactors:
    """Multipliers for depth, width, group width and resolution (before rounding)."""
    depth: float
    width: float
    group_width: float
    resolution: float


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    return float(alpha)


def _check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: unknown {strategy!r}; expected one of {', '.join(STRATEGIES)} "
                         f"(dWr is fast compound scaling, dwr is uniform compound scaling)")
    return strategy


def flops_shares(strategy: str, alpha: float = 0.8) -> tuple[float, float, float]:
    """(e_d, e_w, e_r): the exponent of s given to depth, width and resolution flops (they sum to 1)."""
    strategy, alpha = _check_strategy(strategy), _check_alpha(alpha)
    if strategy == "dWr":
        return (1 - alpha) / 2, alpha, (1 - alpha) / 2
    n = len(strategy)
    return tuple(1 / n if axis in strategy else 0.0 for axis in "dwr")  # type: ignore[return-value]


def theory_exponents(strategy: str, alpha: float = 0.8) -> dict[str, float]:
    """Growth exponents of flops, params and acts in s for one conv stage (the paper's Table 2/4)."""
    e_d, e_w, e_r = flops_shares(strategy, alpha)
    return {"flops": 1.0, "params": e_d + e_w, "acts": e_d + e_w / 2 + e_r}


def scale_factors(flops_factor: float, strategy: str, alpha: float = 0.8,
                  scale_group_width: bool = True) -> ScaleFactors:
    if isinstance(flops_factor, bool) or not isinstance(flops_factor, Real) or not math.isfinite(flops_factor) \
            or flops_factor <= 0:
        raise ValueError(f"flops_factor: expected a finite number > 0, got {flops_factor!r}")
    e_d, e_w, e_r = flops_shares(strategy, alpha)
    s = float(flops_factor)
    width = s ** (e_w / 2)
    return ScaleFactors(depth=s ** e_d, width=width, group_width=width if scale_group_width else 1.0,
                        resolution=s ** (e_r / 2))


Scaler = Callable[[Any, ScaleFactors], Any]
_SCALERS: dict[type, Scaler] = {}


def register_scaler(config_type: type) -> Callable[[Scaler], Scaler]:
    """Register `fn(config, factors) -> scaled config` for a config dataclass type."""
    def wrap(fn: Scaler) -> Scaler:
        _SCALERS[config_type] = fn
        return fn
    return wrap


def scale(config: Any, flops_factor: float, strategy: str, alpha: float = 0.8, scale_group_width: bool = True):
    """Return `config` scaled so its flops grow by about `flops_factor` with `strategy` (see module doc).

    The base config is not modified. `alpha` is used by "dWr" (validated always).
    """
    from frugalnn.scaling import scalers  # noqa: F401  (registers the built-in model families)

    scaler = _SCALERS.get(type(config))
    if scaler is None:
        known = ", ".join(sorted(t.__name__ for t in _SCALERS)) or "none registered"
        raise TypeError(f"config: no scaler for {type(config).__name__} (known: {known})")
    return scaler(config, scale_factors(flops_factor, strategy, alpha, scale_group_width))


def achieved(base: Any, scaled: Any) -> dict[str, float]:
    """Achieved growth of macs, params and acts of `scaled` over `base` (configs with .complexity())."""
    b, s = base.complexity(), scaled.complexity()
    return {"flops": s.macs / b.macs, "params": s.params / b.params, "acts": s.acts / b.acts}
