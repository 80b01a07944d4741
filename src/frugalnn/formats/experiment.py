"""Number formats: how much each format loses on Gaussian samples and on a real weight tensor.

The claim checked is the textbook one every later experiment leans on: round-to-nearest to a
format with m mantissa bits has relative error at most 2^-(m+1) in the normal range, and dynamic
fixed point stays inside the bound documented in frugalnn.formats.dfp. The rules are the pure
functions `rounding_verdict` and `dfp_bound_verdict` below (tests feed them failing figures).
Headline: float8 e4m3's worst rounding error against its unit roundoff.
"""
from __future__ import annotations

import numpy as np

from frugalnn.formats import DFP, FORMATS, GroupQuant, round_to
from frugalnn.report import Context, ExperimentResult, Figure, Row, Table, experiment
from frugalnn.report.figures import figure
from frugalnn.report.verdicts import at_most, holds, measured

TECHNIQUE = "Number formats"
FLOATS = ("fp16", "bf16", "e4m3", "e5m2", "e2m3", "e3m2", "e2m1")
HEADLINE_FORMAT = "e4m3"
# The bound must be reached, not just respected: a worst error under half the unit roundoff on
# ~10^5 normal samples would mean the values were not rounded to m bits at all (a wrong format).
TIGHTNESS = 0.5
REAL_TENSOR = {True: "encoder.layer.0.attention.self.query.weight", False: "encoder.layer.0.intermediate.dense.weight"}


def error_stats(x: np.ndarray, y: np.ndarray) -> dict:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    nz = x64 != 0
    rel = np.abs(y64[nz] - x64[nz]) / np.abs(x64[nz])
    noise = np.sum((y64 - x64) ** 2)
    snr = float("inf") if noise == 0 else 10 * np.log10(np.sum(x64**2) / noise)
    return {"mean_rel": float(rel.mean()), "max_rel": float(rel.max()), "snr_db": float(snr)}


def absmax_scaled(x: np.ndarray, fmt: str) -> np.ndarray:
    """Round after scaling the tensor so its largest magnitude lands on the format's max."""
    scale = FORMATS[fmt].max / float(np.abs(x).max())
    return (round_to(x * np.float32(scale), fmt) / np.float32(scale)).astype(np.float32)


def candidates(x: np.ndarray, direct: bool):
    """(name, bits per value, scaling, rounded x) for every format on tensor x."""
    for name in FLOATS:
        if direct:
            yield name, FORMATS[name].bits, "none", round_to(x, name)
        if name not in ("fp16", "bf16"):
            yield name, FORMATS[name].bits, "per-tensor absmax", absmax_scaled(x, name)
    rows = x.reshape(-1, x.shape[-1])
    for bits, group in ((8, 128), (4, 128), (4, 32), (2, 32)):
        q = GroupQuant.from_float(rows, bits, group, symmetric=False)
        yield f"int{bits} g{group} asym", q.bits_per_weight, "per group", q.dequantize().reshape(x.shape)
    for bits, block in ((16, None), (8, None), (8, 32)):
        d = DFP.from_float(x, bits=bits, block_size=block)
        scope = "per tensor" if block is None else f"block {block}"
        yield f"DFP{bits} {scope}", 8 * d.nbytes / x.size, "shared exponent", d.dequantize()


def rounding_verdict(worst_rel_error: float, unit_roundoff: float) -> dict:
    """Round to nearest with m mantissa bits errs by at most u = 2^-(m+1) in the normal range, and by
    more than TIGHTNESS x u somewhere on many samples: reproduced when both hold, else not."""
    if unit_roundoff <= 0:
        raise ValueError(f"unit_roundoff: expected > 0, got {unit_roundoff!r}")
    ratio = float(worst_rel_error) / unit_roundoff
    return holds(TIGHTNESS <= ratio <= 1 + 1e-9,
                 f"{TIGHTNESS:g} <= max rel. error / u <= 1 reproduced (the bound holds and is reached)")


def dfp_bound_verdict(worst_error_over_bound: float) -> dict:
    """DFP's documented per-element bound 2^(e-1) holds for every element."""
    return {**at_most(worst_error_over_bound, 1.0), "rule": "max |error| / bound <= 1 reproduced"}


@experiment("formats", title="Number formats: error of every format on N(0,1) and on real weights")
def formats(ctx: Context) -> ExperimentResult:
    from frugalnn.data.packages import minilm_tensor

    rng = np.random.default_rng(ctx.seed)
    gauss = rng.standard_normal(256 * (800 if ctx.quick else 8000)).astype(np.float32)
    ctx.step(0.05, "loading MiniLM weight")
    tensor_name = REAL_TENSOR[ctx.quick]
    weight = np.ascontiguousarray(minilm_tensor(tensor_name), dtype=np.float32)
    datasets = {"N(0,1)": (gauss.reshape(-1, 256), True), f"MiniLM {tensor_name}": (weight, False)}

    detail, points = [], []
    for i, (label, (x, direct)) in enumerate(datasets.items()):
        ctx.step(0.1 + 0.4 * i, f"rounding {label}")
        for name, bpv, scaling, y in candidates(x, direct):
            s = error_stats(x, y)
            detail.append([name, round(bpv, 3), label, scaling, s["mean_rel"], s["max_rel"], s["snr_db"]])
            points.append((label, name, bpv, s["snr_db"]))

    rows = []
    normal = gauss[np.abs(gauss) > 0]
    for name in FLOATS:
        f = FORMATS[name]
        inside = normal[(np.abs(normal) >= f.smallest_normal) & (np.abs(normal) <= f.max)]
        worst = error_stats(inside, round_to(inside, name))["max_rel"]
        rows.append(Row(TECHNIQUE, "formats", f"{name}: max rel. error, normal range, N(0,1)",
                        f.unit_roundoff, worst, "",
                        notes="theory: round to nearest with m mantissa bits errs by at most u = 2^-(m+1)",
                        headline=name == HEADLINE_FORMAT, **rounding_verdict(worst, f.unit_roundoff)))
    for bits in (16, 8):
        d = DFP.from_float(weight, bits=bits)
        ratio = float(np.max(np.abs(d.dequantize() - weight) / d.abs_error_bound()))
        rows.append(Row(TECHNIQUE, "formats", f"DFP{bits} per tensor: max |error| / documented bound, MiniLM",
                        1.0, ratio, "", notes="bound 2^(e-1) per element (round to nearest even, headroom 2)",
                        **dfp_bound_verdict(ratio)))
    real = f"MiniLM {tensor_name}"
    for r in detail:
        if r[2] == real and (r[0], r[3]) in (("int4 g128 asym", "per group"), ("e4m3", "per-tensor absmax")):
            rows.append(Row(TECHNIQUE, "formats", f"{r[0]} ({r[3]}) SNR on MiniLM weights", None, r[6], "dB",
                            **measured(f"{r[1]:.3f} bits per value")))

    ctx.step(0.9, "plotting")
    return ExperimentResult(rows=rows,
                  tables=[Table("Error of every format", ["format", "bits/value", "data", "scaling",
                                                          "mean rel. err", "max rel. err", "SNR (dB)"], detail,
                                "relative errors over nonzero inputs (a value flushed to zero counts as 1.0)")],
                  figures=[_snr_figure(points)])


def _snr_figure(points) -> Figure:
    fig, ax = figure(7.5, 4.5)
    for (label, marker) in zip(dict.fromkeys(p[0] for p in points), ("o", "s")):
        pts = [p for p in points if p[0] == label and np.isfinite(p[3])]
        ax.scatter([p[2] for p in pts], [p[3] for p in pts], marker=marker, label=label, alpha=0.8)
        for _, name, bpv, snr in pts:
            ax.annotate(name, (bpv, snr), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("storage bits per value (scales included)")
    ax.set_ylabel("SNR (dB)")
    ax.set_title("Signal-to-noise ratio of each number format")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure.from_matplotlib(fig, "snr", "SNR vs bits per value: floats, group-quantized ints, DFP")
