"""L-Mul (Luo & Sun 2024, "Addition is All You Need for Energy-efficient Language Models") against its claims.

  lmul_precision  product error of L-Mul (m = 1..7, truncated or rounded operands) vs float8 e4m3/e5m2
                  multiplications on N(0,1) and on operand pairs MiniLM really multiplies; the offset
                  sweep; the bias of all-positive sums. Claims: 4-bit L-Mul ~ e4m3, 3-bit L-Mul beats e5m2.
  lmul_models     all-MiniLM-L6-v2 retrieval and SmolLM2-135M perplexity under fp32 / float8 attention /
                  L-Mul attention / everything in float8 or L-Mul. Claims: attention on L-Mul is almost
                  lossless; all-3-bit L-Mul matches an e4m3 model.
  lmul_energy     the paper's energy model (45 nm per-op energies) applied to counted operations, with the
                  memory traffic it leaves out. Claims: -95% elementwise, -80% in dot products. Every row
                  there is DERIVED: arithmetic on the paper's own energy table, not a measurement.

Verdict rules and thresholds: lmul/claims.py. Headline: 4-bit L-Mul's product error vs float8 e4m3.
"""
from __future__ import annotations

import numpy as np

from frugalnn.data import MissingDataError
from frugalnn.lmul import accuracy as models
from frugalnn.lmul import claims, energy, precision
from frugalnn.report import Context, ExperimentResult, Figure, Row, Table, experiment
from frugalnn.report.figures import figure
from frugalnn.report.verdicts import measured, not_measured

TECHNIQUE = "L-Mul"
F32 = np.float32
HEADLINE_DATA = "N(0,1) x N(0,1)"  # the headline: 4-bit L-Mul vs e4m3 on the plainest operands


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def precision_rows(by_data: dict[str, dict[str, precision.ErrorStats]]) -> list[Row]:
    """The two precision claims on every data set (the headline: 4-bit L-Mul vs e4m3 on HEADLINE_DATA),
    and the error floor."""
    rows = []
    for m, fmt, claim, (full, partly) in ((4, "e4m3", "4-bit L-Mul as precise as float8 e4m3", claims.AS_PRECISE),
                                          (3, "e5m2", "3-bit L-Mul more precise than float8 e5m2",
                                           claims.MORE_PRECISE)):
        for label, stats in by_data.items():
            ours, ref = stats[f"L-Mul m={m} truncate"].mean, stats[fmt].mean
            rows.append(Row(TECHNIQUE, "lmul_precision", f"{claim}: mean rel. error of products, {label}",
                            f"<= {fmt}" if full == 1.0 else f"~ {fmt}", ours, "fraction",
                            notes=f"{fmt}: {_pct(ref)}; L-Mul operands truncated, offset l(m); rounded to nearest: "
                                  f"{_pct(stats[f'L-Mul m={m} nearest'].mean)}",
                            headline=m == 4 and label == HEADLINE_DATA,
                            **claims.precision_vs_fp8(ours, ref, fmt, full, partly)))
    floor = min(s[f"L-Mul m=7 {r}"].mean for s in by_data.values() for r in ("truncate", "nearest"))
    rows.append(Row(TECHNIQUE, "lmul_precision", "error floor of L-Mul (m = 7, best data set and rounding)", None,
                    floor, "fraction",
                    **measured("the dropped mantissa product xm*ym bounds the precision whatever m")))
    return rows


@experiment("lmul_precision", title="L-Mul product precision vs float8, offset sweep, bias of positive sums")
def lmul_precision(ctx: Context) -> ExperimentResult:
    rng = np.random.default_rng(ctx.seed)
    n = 1 << (17 if ctx.quick else 21)
    ctx.step(0.05, "operand pairs from MiniLM")
    _, docs = models.retrieval_set(8 if ctx.quick else 32)
    datasets = {HEADLINE_DATA: (rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)),
                **precision.minilm_pairs(rng, n, docs)}
    ctx.step(0.25, "product errors, m = 1..7")
    detail, by_data = precision.precision_table(datasets)

    rows = precision_rows(by_data)
    ctx.step(0.55, "offset sweep")
    x, y = datasets[HEADLINE_DATA]
    sweep_rows, best = precision.offset_sweep(x[: 1 << 17], y[: 1 << 17])
    best_rows = []
    for (m, rounding), (l_best, errs) in best.items():
        l_paper = precision.paper_offset(m)
        best_rows.append([m, rounding, l_paper, errs[l_paper].mean, errs[l_paper].bias, l_best, errs[l_best].mean,
                          errs[l_best].bias])
    for rounding in ("truncate", "nearest"):
        sel = [r for r in best_rows if r[1] == rounding]
        rows.append(Row(TECHNIQUE, "lmul_precision",
                        f"the paper's offset l(m) minimises the error, operands "
                        f"{'truncated' if rounding == 'truncate' else 'rounded to nearest'} (m = 2..6)",
                        "l(m) = m (m <= 3), 3 (m = 4), 4 (m > 4)",
                        ", ".join(f"m={r[0]}: best l={r[5]}" for r in sel), "",
                        notes="bias at the paper's l: " + ", ".join(f"m={r[0]} {r[4]:+.1%}" for r in sel),
                        **claims.paper_offset_fits({r[0]: (r[2], r[3], r[5], r[6]) for r in sel})))

    ctx.step(0.75, "bias of all-positive sums")
    k, n_sums = (256, 2000) if ctx.quick else (1024, 10000)
    bias_rows = precision.sum_bias(rng, k, n_sums, precision.sum_schemes())
    for r in bias_rows:
        if r[0].startswith("L-Mul m=3") or r[0].startswith("L-Mul m=4"):
            rows.append(Row(TECHNIQUE, "lmul_precision", f"{r[0]}: rel. error of all-positive sums of {k} products",
                            None, r[1], "fraction",
                            **measured(f"random signs instead: |error| / sum|xy| = {_pct(r[3])} (the bias cancels)")))

    ctx.step(0.9, "figures")
    return ExperimentResult(
        rows=rows,
        tables=[Table("Relative error of one product", ["data", "scheme", "m", "rounding", "l", "mean", "median",
                                                        "max", "bias (mean signed)"], detail,
                      "fractions; bias = mean (|approx| - |exact|) / |exact|; float8 rows: operands rounded to "
                      "float8 (ml_dtypes, no scaling: magnitudes under 2^-9 (e4m3) or 2^-16 (e5m2) flush to "
                      "zero), product exact"),
                Table("Offset sweep (N(0,1) pairs): the paper's l against the best l",
                      ["m", "rounding", "paper l", "mean err at paper l", "bias at paper l", "best l",
                       "mean err at best l", "bias at best l"], best_rows),
                Table("Offset sweep, every l", ["m", "rounding", "l", "mean rel. error", "bias"], sweep_rows),
                Table(f"All-positive vs random-sign sums of {k} products ({n_sums} sums)",
                      ["scheme", "positive: mean signed rel. error", "positive: std", "random signs: |err| / sum|xy|"],
                      bias_rows, "L-Mul sums accumulate in float32 (lmul_matmul); float8: exact sums of exact products")],
        figures=[Figure.from_matplotlib(precision.error_figure(by_data), "error_vs_m",
                                        "Mean relative error of a product vs L-Mul mantissa bits, float8 as lines"),
                 Figure.from_matplotlib(precision.offset_figure(sweep_rows), "offset_sweep",
                                        "Mean relative error vs the offset exponent l")])


def _smollm2_perplexities(ctx: Context, schemes_):
    import copy

    from frugalnn import llm as llama

    model = llama.load("smollm2", bits="fp32")
    tok = llama.load_tokenizer(model.source)
    ids = llama.reference_tokens(tok, quick=ctx.quick, n_tokens=256 if ctx.quick else None)
    out = {}
    for i, scheme in enumerate(schemes_):
        ctx.step(0.6 + 0.35 * i / len(schemes_), f"SmolLM2 under {scheme.name}")
        m = scheme.apply(model) if scheme.kind != "fp32" else copy.copy(model)
        out[scheme.name] = llama.perplexity(lambda t, m=m: m(t), ids).perplexity
    return out, len(ids)


@experiment("lmul_models", title="L-Mul in real models: MiniLM retrieval, SmolLM2 perplexity")
def lmul_models(ctx: Context) -> ExperimentResult:
    schemes_ = models.schemes(ctx.quick)
    n_pairs, max_length = (16, 128) if ctx.quick else (79, 256)
    mini, meta = models.minilm_study(ctx, schemes_, n_pairs, max_length)
    notes = []
    try:
        ppl, n_tokens = _smollm2_perplexities(ctx, schemes_)
    except (MissingDataError, ImportError) as e:
        ppl, n_tokens = {}, 0
        notes.append(f"SmolLM2 skipped: {e}")

    table = []
    for s in schemes_:
        r = mini[s.name]
        p = ppl.get(s.name)
        dp = None if p is None else p / ppl["fp32"] - 1
        table.append([s.name, r["cos_mean"], r["cos_min"], r["top1_agree"], r["spearman"], r["hit1"], p, dp])

    rows = []
    for m in (3, 4):
        r = mini[f"L-Mul m={m} attention"]
        rows.append(Row(TECHNIQUE, "lmul_models", f"attention on L-Mul m={m} is almost lossless: MiniLM",
                        "almost lossless", f"cos {r['cos_mean']:.4f}, top-1 {r['top1_agree']:.0%}", "",
                        notes=f"{2 * n_pairs} texts; e4m3 attention: cos {mini['e4m3 attention']['cos_mean']:.4f}",
                        **claims.attention_lossless_embeddings(r["cos_mean"], r["top1_agree"])))
        if ppl:
            d = ppl[f"L-Mul m={m} attention"] / ppl["fp32"] - 1
            rows.append(Row(TECHNIQUE, "lmul_models", f"attention on L-Mul m={m} is almost lossless: SmolLM2 "
                            "perplexity", "almost lossless", d, "rel. change",
                            notes=f"fp32 {ppl['fp32']:.3f}, e4m3 attention "
                                  f"{ppl['e4m3 attention'] / ppl['fp32'] - 1:+.2%} ({n_tokens} tokens)",
                            **claims.attention_lossless_perplexity(d)))
        else:
            rows.append(Row(TECHNIQUE, "lmul_models", f"attention on L-Mul m={m} is almost lossless: SmolLM2 "
                            "perplexity", "almost lossless", None, "rel. change", **not_measured(" ".join(notes))))
    l3, e4 = mini["L-Mul m=3 all"], mini["e4m3 all"]
    detail = f"MiniLM cos {l3['cos_mean']:.4f} vs e4m3-all {e4['cos_mean']:.4f}"
    if ppl:
        detail += f"; SmolLM2 ppl {ppl['L-Mul m=3 all']:.3f} vs e4m3-all {ppl['e4m3 all']:.3f}"
    rows.append(Row(TECHNIQUE, "lmul_models", "all matmuls on 3-bit L-Mul match an all-e4m3 model (inference)",
                    "equivalent", detail, "",
                    notes="the paper's fine-tuning half of this claim is not run here"
                          + ("" if ppl else "; SmolLM2 not measured: " + " ".join(notes)),
                    **claims.all_lmul_matches_e4m3(l3["cos_mean"], e4["cos_mean"], ppl.get("L-Mul m=3 all"),
                                                   ppl.get("e4m3 all"))))
    alt = "L-Mul m=3 all, nearest, l=4"
    if alt in mini:
        detail = f"MiniLM cos {mini[alt]['cos_mean']:.4f} (truncated, l=3: {l3['cos_mean']:.4f}; e4m3-all " \
                 f"{e4['cos_mean']:.4f})"
        if ppl:
            detail += f"; SmolLM2 ppl {ppl[alt]:.3f} (truncated: {ppl['L-Mul m=3 all']:.3f}; e4m3-all " \
                      f"{ppl['e4m3 all']:.3f})"
        rows.append(Row(TECHNIQUE, "lmul_models", "all matmuls on 3-bit L-Mul, operands rounded to nearest, l=4",
                        None, detail, "",
                        **measured("the offset that is unbiased for rounded operands (lmul_precision)")))
    cols = ["scheme", "MiniLM cos mean", "cos min", "top-1 agreement", "Spearman", "hit@1 (title->doc)",
            "SmolLM2 ppl", "ppl vs fp32"]
    return ExperimentResult(rows=rows, tables=[Table("Real models under each scheme", cols, table,
                                           f"MiniLM: {meta['texts']} pydoc-topic texts ({meta['tokens']} tokens, "
                                           f"max {max_length}); agreement metrics against fp32 embeddings. SmolLM2: "
                                           f"perplexity of {n_tokens} tokens of CPython's pydoc topics. "
                                           + " ".join(notes))],
                  figures=[_models_figure(table)])


def _models_figure(table) -> Figure:
    names = [r[0] for r in table]
    fig, axes = figure(11, 4, ncols=2)
    axes[0].bar(names, [max(1 - r[1], 1e-7) for r in table], color="tab:blue")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("1 - mean cosine to fp32 (MiniLM)")
    if table[0][6] is not None:
        axes[1].bar(names, [100 * r[7] for r in table], color="tab:orange")
        axes[1].set_ylabel("perplexity change vs fp32 (%) (SmolLM2)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return Figure.from_matplotlib(fig, "models", "Loss of each scheme: MiniLM embeddings and SmolLM2 perplexity")


def per_operation_rows() -> list[Row]:
    """The paper's -95% / -80%, recomputed from its own energy table: DERIVED rows, never reproduced."""
    rows = []
    for width, paper_elem, paper_dot in ((32, 0.95, 0.80), (16, 0.95, 0.80)):
        e, d = energy.elementwise_saving(width), energy.dot_saving(width)
        rows.append(Row(TECHNIQUE, "lmul_energy", f"energy saved per elementwise multiplication, fp{width}",
                        paper_elem, e, "fraction",
                        notes=f"int{width} add {energy.PJ[f'int{width} add']:.3g} pJ vs fp{width} mul "
                              f"{energy.PJ[f'fp{width} mul']} pJ ({energy.SOURCE})",
                        **claims.energy_arithmetic(f"1 - int{width} add / fp{width} mul")))
        rows.append(Row(TECHNIQUE, "lmul_energy", f"energy saved per dot-product MAC, fp{width}", paper_dot, d,
                        "fraction", notes="the float addition of the accumulation stays",
                        **claims.energy_arithmetic(f"1 - (int{width} add + fp{width} add) / "
                                                   f"(fp{width} mul + fp{width} add)")))
    return rows


@experiment("lmul_energy", title="L-Mul energy model on counted operations, and what it leaves out")
def lmul_energy(ctx: Context) -> ExperimentResult:
    rows = per_operation_rows()

    ctx.step(0.1, "counting MiniLM operations")
    from frugalnn.models.minilm import load_minilm

    model, tok = load_minilm("eager")
    queries, docs = models.retrieval_set(4 if ctx.quick else 16)
    batch = tok(queries + docs, padding=True, truncation=True, max_length=128, return_tensors="pt")
    n_params = sum(p.numel() for p in model.parameters())
    forward = []  # [workload, scheme, float MACs, L-Mul MACs, arithmetic uJ, DRAM uJ]; a workload's first row is its baseline
    for i, scheme in enumerate(s for s in models.schemes(True) if s.name in ("fp32", "L-Mul m=3 attention",
                                                                             "L-Mul m=3 all")):
        ctx.step(0.2 + 0.2 * i, f"MiniLM under {scheme.name}")
        import torch

        with torch.no_grad():
            macs = models.count_macs(scheme.apply(model), lambda m: m(**batch))
        forward.append([f"MiniLM forward, {len(queries) + len(docs)} texts, fp32 weights", scheme.name, macs["float"],
                        macs["lmul"], energy.mac_energy_pj(macs["float"], macs["lmul"]) / 1e6,
                        n_params * 4 * energy.DRAM_PJ_PER_BYTE / 1e6])

    ctx.step(0.85, "SmolLM2 decode profile")
    try:
        prof = energy.smollm2_decode_profile(context=512)
        lin, att = prof["linear_macs"], prof["attention_macs"]
        for weights, nbytes in (("fp32 weights", prof["weight_bytes_fp32"]),
                                ("Q4_1 weights as shipped", prof["weight_bytes_shipped"])):
            mem = (nbytes + prof["kv_bytes"]) * energy.DRAM_PJ_PER_BYTE / 1e6
            for name, fl, lm in (("fp32", lin + att, 0), ("L-Mul attention", lin, att), ("L-Mul all", 0, lin + att)):
                forward.append([f"SmolLM2 decode token, 512 cached, {weights}", name, fl, lm,
                                energy.mac_energy_pj(fl, lm) / 1e6, mem])
    except MissingDataError as e:
        rows.append(Row(TECHNIQUE, "lmul_energy", "SmolLM2 decode profile", None, None, "", **not_measured(str(e))))

    table, workload_rows = workload_energy(forward)
    rows += workload_rows
    return ExperimentResult(rows=rows, tables=[
        Table("Per-operation energy (pJ)", ["operation", "pJ"], [[k, v] for k, v in energy.PJ.items()], energy.SOURCE),
        Table("Energy of counted operations per forward", ["workload", "scheme", "float MACs", "L-Mul MACs",
                                                           "arithmetic (uJ)", "arithmetic saved", "DRAM traffic (uJ)",
                                                           "total (uJ)", "total saved"], table,
              "MACs counted by torch's FLOP counter (our op registers its formula; MiniLM with eager attention, "
              "padded batch) or from the GGUF shapes (SmolLM2: every 2-D weight once per token, the tied LM head "
              "included, plus q.K and p.V over 512 cached positions). DRAM: weights read once per forward plus, "
              "for decoding, the fp32 KV cache. Savings are against the first row of the same workload. "
              "SRAM/register traffic and elementwise operations are left out.")],
        figures=[_energy_figure(table)])


def workload_energy(forward: list[list]) -> tuple[list[list], list[Row]]:
    """forward: [workload, scheme, float MACs, L-Mul MACs, arithmetic uJ, DRAM uJ], a workload's first row its
    baseline -> (the energy table with savings, DERIVED rows for the all-L-Mul schemes). The MAC counts are
    this run's; every joule is the paper's table applied to them."""
    table, base, rows = [], {}, []
    for workload, scheme, fl, lm, compute_uj, mem_uj in forward:
        c0, t0 = base.setdefault(workload, (compute_uj, compute_uj + mem_uj))
        table.append([workload, scheme, fl, lm, compute_uj, 1 - compute_uj / c0, mem_uj, compute_uj + mem_uj,
                      1 - (compute_uj + mem_uj) / t0])
    for r in table:
        if r[1].startswith("L-Mul") and "all" in r[1]:
            rows.append(Row(TECHNIQUE, "lmul_energy", f"{r[0]}, {r[1]}: energy saved, DRAM traffic counted", 0.80,
                            r[8], "fraction",
                            notes=f"arithmetic alone: {_pct(r[5])} (the paper's model); the DRAM reads it leaves "
                                  f"out are {_pct(r[6] / r[7])} of this workload's energy under L-Mul",
                            **claims.energy_arithmetic("per-op energies x MACs counted in this run, plus DRAM "
                                                       "reads at the table's 64-bit access energy")))
    return table, rows


def _energy_figure(table) -> Figure:
    fig, ax = figure(9, 4.5)
    names = [f"{r[0]}\n{r[1]}" for r in table]
    base = {}
    for r in table:  # each workload relative to its own baseline total
        base.setdefault(r[0], r[7])
    arith = [100 * r[4] / base[r[0]] for r in table]
    memory = [100 * r[6] / base[r[0]] for r in table]
    ax.barh(names, arith, label="arithmetic (MACs)")
    ax.barh(names, memory, left=arith, label="DRAM traffic (lower bound)")
    ax.set_xlabel("energy, % of the workload's first (fp32 arithmetic) row, 45 nm model")
    ax.tick_params(axis="y", labelsize=6)
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return Figure.from_matplotlib(fig, "energy", "Arithmetic vs memory energy per scheme")
