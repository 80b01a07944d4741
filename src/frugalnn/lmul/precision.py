"""Precision of L-Mul products against float8 multiplications (helpers of lmul/experiment.py).

Error of one product = |approx - x*y| / |x*y| with the exact product in float64, over pairs whose
exact product is nonzero. L-Mul: frugalnn.lmul.arith on float32 operands. float8 "multiplication":
both operands rounded to e4m3/e5m2 (round to nearest even, saturating, by ml_dtypes through
frugalnn.formats.round_to, no scaling: the same fp32 values L-Mul sees, so operands below float8's
smallest subnormal flush to zero), product kept exact, the most favourable reading for fp8 otherwise
(a real fp8 multiplier adds an output rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn.formats import round_to
from frugalnn.lmul import lmul, lmul_matmul, paper_offset
from frugalnn.report.figures import figure

FP8 = ("e4m3", "e5m2")


@dataclass
class ErrorStats:
    mean: float
    median: float
    max: float
    bias: float  # mean of (|approx| - |exact|) / |exact|: > 0 means products come out too large in magnitude

    @classmethod
    def of(cls, approx: np.ndarray, exact: np.ndarray) -> "ErrorStats":
        nz = exact != 0
        a, e = approx[nz].astype(np.float64), exact[nz]
        err = np.abs(a - e) / np.abs(e)
        magnitude = (np.abs(a) - np.abs(e)) / np.abs(e)
        return cls(float(err.mean()), float(np.median(err)), float(err.max()), float(magnitude.mean()))


def lmul_errors(x, y, m: int, rounding: str, offset: int | None = None) -> ErrorStats:
    return ErrorStats.of(lmul(x, y, m, rounding, offset), x.astype(np.float64) * y)


def fp8_errors(x, y, fmt: str) -> ErrorStats:
    approx = round_to(x, fmt).astype(np.float64) * round_to(y, fmt).astype(np.float64)
    return ErrorStats.of(approx, x.astype(np.float64) * y)


def precision_table(datasets: dict[str, tuple[np.ndarray, np.ndarray]], widths=range(1, 8)):
    """Rows [data, scheme, m, rounding, l, mean, median, max, bias] and {data: {scheme: ErrorStats}}."""
    rows, by_data = [], {}
    for label, (x, y) in datasets.items():
        stats = {}
        for m in widths:
            for rounding in ("truncate", "nearest"):
                s = lmul_errors(x, y, m, rounding)
                stats[f"L-Mul m={m} {rounding}"] = s
                rows.append([label, "L-Mul", m, rounding, paper_offset(m), s.mean, s.median, s.max, s.bias])
        for fmt in FP8:
            s = fp8_errors(x, y, fmt)
            stats[fmt] = s
            rows.append([label, f"float8 {fmt}", 3 if fmt == "e4m3" else 2, "nearest", "-", s.mean, s.median,
                         s.max, s.bias])
        by_data[label] = stats
    return rows, by_data


def offset_sweep(x, y, widths=(2, 3, 4, 5, 6), offsets=range(1, 9)):
    """Rows [m, rounding, l, mean, bias] for every (m, rounding, l); and the best l per (m, rounding)."""
    rows, best = [], {}
    for m in widths:
        for rounding in ("truncate", "nearest"):
            errs = {}
            for l_ in offsets:
                s = lmul_errors(x, y, m, rounding, l_)
                errs[l_] = s
                rows.append([m, rounding, l_, s.mean, s.bias])
            best[(m, rounding)] = min(errs, key=lambda k: errs[k].mean), errs
    return rows, best


def sum_bias(rng, k: int, n_sums: int, schemes: dict):
    """Relative error of length-k dot products: all-positive operands vs random signs.

    Returns rows [scheme, positive: mean signed rel. error of the sum, positive: std,
    random signs: mean |error| / sum |x y|]. Sums of L-Mul products accumulate in float32 (lmul_matmul);
    fp8 sums are exact sums of exact fp8 products (the rounding error of the operands only).
    """
    mag_x = np.abs(rng.standard_normal((n_sums, k))).astype(np.float32)
    mag_y = np.abs(rng.standard_normal((k, 1))).astype(np.float32)
    sign = np.where(rng.random((n_sums, k)) < 0.5, -1, 1).astype(np.float32)
    rows = []
    for name, fn in schemes.items():
        out = []
        for x in (mag_x, mag_x * sign):
            exact = x.astype(np.float64) @ mag_y.astype(np.float64)
            approx = fn(x, mag_y).astype(np.float64)
            out.append((approx - exact)[:, 0] / (np.abs(x).astype(np.float64) @ mag_y)[:, 0])
        rows.append([name, float(out[0].mean()), float(out[0].std()), float(np.abs(out[1]).mean())])
    return rows


def sum_schemes():
    def lmul_sum(m, rounding):
        return lambda x, y: lmul_matmul(x, y, m, rounding)

    def fp8_sum(fmt):
        return lambda x, y: round_to(x, fmt).astype(np.float64) @ round_to(y, fmt).astype(np.float64)

    schemes = {f"L-Mul m={m} {r}": lmul_sum(m, r) for m in (3, 4) for r in ("truncate", "nearest")}
    schemes.update({f"float8 {f}": fp8_sum(f) for f in FP8})
    return schemes


def error_figure(by_data: dict, widths=range(1, 8)):
    fig, axes = figure(5.2 * len(by_data), 4.2, ncols=len(by_data), sharey=True, squeeze=False)
    for ax, (label, stats) in zip(axes[0], by_data.items()):
        for rounding, marker in (("truncate", "o"), ("nearest", "s")):
            ax.plot(list(widths), [100 * stats[f"L-Mul m={m} {rounding}"].mean for m in widths], marker=marker,
                    label=f"L-Mul, operands {'truncated' if rounding == 'truncate' else 'rounded to nearest'}")
        for fmt, style in zip(FP8, ("--", ":")):
            ax.axhline(100 * stats[fmt].mean, color="k", linestyle=style, label=f"float8 {fmt} product")
        ax.set_yscale("log")
        ax.set_xlabel("L-Mul mantissa bits m (offset l(m) of the paper)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean relative error of a product (%)")
    axes[0][0].legend(fontsize=7)
    return fig


def offset_figure(sweep_rows):
    fig, axes = figure(10, 4, ncols=2, sharey=True)
    for ax, rounding in zip(axes, ("truncate", "nearest")):
        for m in sorted({r[0] for r in sweep_rows}):
            pts = [(r[2], 100 * r[3]) for r in sweep_rows if r[0] == m and r[1] == rounding]
            line, = ax.plot(*zip(*pts), marker="o", label=f"m={m}")
            paper = [p for p in pts if p[0] == paper_offset(m)]
            ax.plot(*zip(*paper), marker="*", markersize=14, color=line.get_color(), linestyle="none")
        ax.set_title(f"operands {'truncated' if rounding == 'truncate' else 'rounded to nearest'} "
                     "(star: the paper's l(m))", fontsize=9)
        ax.set_xlabel("offset exponent l (the 2^-l term)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("mean relative error (%), N(0,1) pairs")
    axes[0].legend(fontsize=8)
    return fig


def minilm_pairs(rng, n: int, texts: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Operand pairs that MiniLM really multiplies, from a forward pass over `texts` (layer 2):
    weight x activation (the query projection W_q[i, j] * x[t, j]) and query x key (q[t, c] * k[s, c]
    within one text and one head channel)."""
    import torch

    from frugalnn.models.minilm import hidden_states, load_minilm

    model, tok = load_minilm()
    states, mask = hidden_states(model, tok, texts, max_length=128)
    attn = model.encoder.layer[2].attention.self
    x = states[2]                                     # [B, T, 384]: the input of layer 2
    with torch.no_grad():
        q, k = attn.query(x), attn.key(x)
    w = attn.query.weight.detach().numpy()
    valid = [np.flatnonzero(mask[b].numpy()) for b in range(len(texts))]
    b = rng.integers(0, len(texts), n)
    t = np.array([rng.choice(valid[i]) for i in b])
    s = np.array([rng.choice(valid[i]) for i in b])
    i, j = rng.integers(0, w.shape[0], n), rng.integers(0, w.shape[1], n)
    xn, qn, kn = x.numpy(), q.numpy(), k.numpy()
    return {"MiniLM weight x activation": (w[i, j].astype(np.float32), xn[b, t, j].astype(np.float32)),
            "MiniLM query x key": (qn[b, t, j].astype(np.float32), kn[b, s, j].astype(np.float32))}
