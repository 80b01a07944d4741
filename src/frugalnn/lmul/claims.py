"""The L-Mul paper's claims as verdict rules: pure functions of measured figures.

lmul/experiment.py measures and calls these; tests feed them passing and failing figures, so every
rule is seen to return NOT_REPRODUCED without a heavy run. Each returns {"verdict", "rule"} to splat
into a report Row, the rule text carrying its thresholds.
"""
from __future__ import annotations

from frugalnn.report.verdicts import at_most, combine, derived, holds

# "4-bit L-Mul is as precise as float8 e4m3": its mean product error at most 1.10x e4m3's
# (partly at 1.25x). "3-bit L-Mul is more precise than e5m2": at most 1.0x (partly at 1.10x).
AS_PRECISE = (1.10, 1.25)
MORE_PRECISE = (1.00, 1.10)
# The paper's l(m) "fits" an m when it is the best l there or its error is within 2% of the best.
OFFSET_SLACK = 0.02
# "Almost lossless": MiniLM embeddings keep a mean cosine >= 0.99 to fp32 and >= 95% of the top-1
# retrievals; a language model loses at most 1% perplexity.
LOSSLESS_COS_LOSS, LOSSLESS_TOP1_LOSS, LOSSLESS_PPL = 0.01, 0.05, 0.01
# "All matmuls on 3-bit L-Mul match an all-e4m3 model": mean cosine at most 0.002 below e4m3's,
# perplexity at most 1% above e4m3's.
MATCH_COS, MATCH_PPL = 0.002, 0.01
ENERGY_TABLE = "Horowitz, ISSCC 2014, 45 nm"


def _named(name: str, judged: dict) -> dict:
    return {**judged, "rule": f"{name} {judged['rule']}"}


def _all_of(parts: list[dict]) -> dict:
    """Sub-claims joined: all reproduced -> reproduced, none -> not reproduced, else partly."""
    rule = "; ".join(p["rule"] for p in parts)
    return combine(parts, f"{rule} (all: reproduced; none: not reproduced; else partly)" if len(parts) > 1 else rule)


def precision_vs_fp8(lmul_error: float, fp8_error: float, fmt: str, full: float, partly: float) -> dict:
    """L-Mul's mean product error against a float8 format's, as the ratio of the two."""
    if fp8_error <= 0:
        raise ValueError(f"fp8_error: expected a positive mean error, got {fp8_error!r}")
    return _named(f"L-Mul error / {fmt} error", at_most(lmul_error / fp8_error, full, partly=partly))


def paper_offset_fits(per_m: dict[int, tuple[int, float, int, float]]) -> dict:
    """per_m: m -> (paper l, mean error at paper l, best l, mean error at best l). Reproduced when the
    paper's l fits every m, not reproduced when it fits none, partly otherwise."""
    if not per_m:
        raise ValueError("per_m: expected at least one mantissa width")
    parts = [holds(bool(l_best == l_paper or err_best >= (1 - OFFSET_SLACK) * err_paper), f"m={m}")
             for m, (l_paper, err_paper, l_best, err_best) in sorted(per_m.items())]
    return combine(parts, f"per m: the paper's l is the best l, or its mean error is within {OFFSET_SLACK:.0%} of "
                          "the best l's; all m: reproduced, none: not reproduced, else partly")


def attention_lossless_embeddings(cos_mean: float, top1_agreement: float) -> dict:
    """MiniLM under L-Mul attention against fp32: cosine loss and lost top-1 retrievals."""
    return _all_of([_named("1 - mean cosine to fp32", at_most(1 - cos_mean, LOSSLESS_COS_LOSS)),
                    _named("1 - top-1 agreement", at_most(1 - top1_agreement, LOSSLESS_TOP1_LOSS))])


def attention_lossless_perplexity(relative_change: float) -> dict:
    """SmolLM2 perplexity under L-Mul attention, relative to fp32 (0.011 = +1.1%)."""
    return _named("perplexity change vs fp32", at_most(relative_change, LOSSLESS_PPL))


def all_lmul_matches_e4m3(cos_lmul: float, cos_e4m3: float, ppl_lmul: float | None = None,
                          ppl_e4m3: float | None = None) -> dict:
    """Every matmul on 3-bit L-Mul against every matmul on e4m3: MiniLM cosine, and SmolLM2 perplexity
    when it was measured."""
    parts = [_named("MiniLM mean cosine below e4m3-all's", at_most(cos_e4m3 - cos_lmul, MATCH_COS))]
    if ppl_lmul is not None and ppl_e4m3 is not None:
        parts.append(_named("SmolLM2 perplexity / e4m3-all's - 1", at_most(ppl_lmul / ppl_e4m3 - 1, MATCH_PPL)))
    return _all_of(parts)


def energy_arithmetic(what: str) -> dict:
    """Every energy figure: the paper's per-operation energy table applied to operations counted here.
    Arithmetic on the paper's inputs, not a measurement, so never counted as reproduced."""
    return derived(f"arithmetic on the paper's energy table ({ENERGY_TABLE}): {what}")
