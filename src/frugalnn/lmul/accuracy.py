"""Real models under L-Mul and float8 schemes (helpers of lmul/experiment.py).

Schemes are applied to a fresh copy of the model:
  fp32                       the model as shipped
  e4m3 / e5m2 attention      both attention matmuls on operands rounded to float8 (no scaling, saturating)
  L-Mul m=3 / m=4 attention  LMulConfig(scope="attention"), operands truncated, the paper's offset
  e4m3 all / L-Mul m=k all   the same for every linear layer too (full mode adds m=4, and m=3 with
                             operands rounded to nearest and l=4, the best offset for rounded operands)
float8 emulation: operands rounded by ml_dtypes (frugalnn.formats.round_to), products and sums in float32.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import numpy as np
import torch

from frugalnn import convert_
from frugalnn.formats import round_to
from frugalnn.lmul.nn import LMulConfig, attention_routes_for, is_linear
from frugalnn.routing import looks_like_attention, route_


def fp8_matmul(fmt: str):
    def matmul(a, b):
        return torch.matmul(round_to(a.detach().float(), fmt), round_to(b.detach().float(), fmt))
    return matmul


class Fp8Linear(torch.nn.Module):
    """nn.Linear on float8-rounded input and weight (emulated; bias added in float32)."""

    def __init__(self, linear: torch.nn.Module, fmt: str):
        super().__init__()
        self.weight_fp8 = round_to(linear.weight.detach().float(), fmt)
        self.bias = getattr(linear, "bias", None)
        self.fmt = fmt

    def forward(self, x):
        y = torch.nn.functional.linear(round_to(x.detach().float(), self.fmt), self.weight_fp8)
        return y if self.bias is None else y + self.bias


@dataclass(frozen=True)
class Scheme:
    name: str
    kind: str  # "fp32" | "fp8" | "lmul"
    fmt: str = ""
    mantissa_bits: int = 0
    scope: str = "attention"
    rounding: str = "truncate"
    offset: int | None = None

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        model = copy.deepcopy(model)
        if self.kind == "lmul":
            return convert_(model, LMulConfig(mantissa_bits=self.mantissa_bits, rounding=self.rounding,
                                              offset=self.offset, scope=self.scope))
        if self.kind == "fp8":
            if self.scope == "all":
                from frugalnn.convert import swap_modules

                swap_modules(model, lambda m, fqn: is_linear(m), lambda m, fqn: Fp8Linear(m, self.fmt))
            route_(model, attention_routes_for(fp8_matmul(self.fmt)), f"float8 {self.fmt} attention",
                   looks_like_attention)
        return model


def schemes(quick: bool) -> list[Scheme]:
    out = [Scheme("fp32", "fp32"),
           Scheme("e4m3 attention", "fp8", fmt="e4m3"), Scheme("e5m2 attention", "fp8", fmt="e5m2"),
           Scheme("L-Mul m=3 attention", "lmul", mantissa_bits=3), Scheme("L-Mul m=4 attention", "lmul", mantissa_bits=4),
           Scheme("e4m3 all", "fp8", fmt="e4m3", scope="all"),
           Scheme("L-Mul m=3 all", "lmul", mantissa_bits=3, scope="all")]
    if not quick:  # is the all-L-Mul gap the truncation bias? the same width, operands rounded, the best offset
        out += [Scheme("L-Mul m=3 all, nearest, l=4", "lmul", mantissa_bits=3, scope="all", rounding="nearest",
                       offset=4),
                Scheme("L-Mul m=4 all", "lmul", mantissa_bits=4, scope="all")]
    return out


def retrieval_set(n: int) -> tuple[list[str], list[str]]:
    """(queries, documents) from CPython's pydoc topics: query = a topic's title, document = its prose.

    Fixed and shipped with every Python: topics in sorted order, the first `n`; the document is the
    topic's text after the title with code and grammar blocks (indented lines) removed, first 1500 chars.
    """
    from pydoc_data.topics import topics

    queries, docs = [], []
    for key in sorted(topics)[:n]:
        lines = topics[key].splitlines()
        title = lines[0].strip()
        prose = [ln.strip() for ln in lines[2:] if ln.strip() and not ln.startswith("   ") and not set(ln) <= set("*=-")]
        queries.append(title)
        docs.append(re.sub(r"\s+", " ", " ".join(prose))[:1500])
    return queries, docs


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, axis=-1), axis=-1).astype(np.float64)


def retrieval_metrics(q: torch.Tensor, d: torch.Tensor, q_ref: torch.Tensor, d_ref: torch.Tensor) -> dict:
    """Agreement of a scheme's retrieval with fp32's: cosine of embeddings, top-1 agreement, Spearman of rankings."""
    scores, ref = (q @ d.T).numpy(), (q_ref @ d_ref.T).numpy()
    cos = torch.cat([(q * q_ref).sum(-1), (d * d_ref).sum(-1)]).numpy()
    r, r_ref = ranks(scores), ranks(ref)
    r -= r.mean(1, keepdims=True)
    r_ref -= r_ref.mean(1, keepdims=True)
    spearman = (r * r_ref).sum(1) / np.sqrt((r * r).sum(1) * (r_ref * r_ref).sum(1))
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
            "top1_agree": float((scores.argmax(1) == ref.argmax(1)).mean()),
            "spearman": float(spearman.mean()),
            "hit1": float((scores.argmax(1) == np.arange(len(scores))).mean())}


def count_macs(model: torch.nn.Module, run) -> dict:
    """Multiply-accumulates of one forward by kind: {"lmul": ..., "float": ...} (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    import frugalnn.lmul.nn  # noqa: F401  (the L-Mul op's FLOP formula)

    with FlopCounterMode(display=False) as counter:
        run(model)
    counts = counter.get_flop_counts()["Global"]
    lmul = counts.get(torch.ops.frugalnn.lmul_matmul, 0) // 2
    return {"lmul": lmul, "float": sum(counts.values()) // 2 - lmul}


def minilm_study(ctx, schemes_: list[Scheme], n_pairs: int, max_length: int):
    """Per scheme: retrieval metrics vs fp32, and the MACs of embedding the whole set (batches of 32, padded;
    eager attention, which torch's FLOP counter sees: its CPU flash-SDPA kernel is not counted)."""
    from frugalnn.models.minilm import embed, load_minilm

    model, tok = load_minilm("eager")
    queries, docs = retrieval_set(n_pairs)
    results, ref = {}, None
    for i, scheme in enumerate(schemes_):
        ctx.step(0.1 + 0.5 * i / len(schemes_), f"MiniLM under {scheme.name}")
        m = scheme.apply(model)
        out = {}

        def run(mm):
            out["q"], out["d"] = embed(mm, tok, queries, max_length), embed(mm, tok, docs, max_length)
        macs = count_macs(m, run)
        if ref is None:
            ref = (out["q"], out["d"])
        results[scheme.name] = {**retrieval_metrics(out["q"], out["d"], *ref), "macs": macs}
    tokens = sum(len(ids) for ids in tok(queries + docs, truncation=True, max_length=max_length)["input_ids"])
    return results, {"texts": 2 * n_pairs, "max_length": max_length, "tokens": tokens}
