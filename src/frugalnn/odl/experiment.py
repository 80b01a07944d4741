"""ODL (PULP-TrainLib, Nadalini et al. 2023) against its claims.

  odl_primitives  the models' weight / MAC counts (exact); one batch-1 training step on the engine
                  against torch eager (targets >= 3x DS-CNN, >= 2x ResNet8) and torch.compile, at one
                  thread; MAC/clk beside the paper's 3.11 / 0.81 (8 RISC-V cores); fp16 vs fp32 here;
                  memory per step; fp16 error against K (figure); the RISC-V instruction-count proxy
                  for the paper's fp16 1.72x.
  odl_scenario    ResNet8 pretrained on Fashion-MNIST classes 0-7, classes 8-9 learned sample by sample
                  on the engine in fp32 and fp16 with a replay buffer: fp16 within 1 pp of fp32.
  odl_kws         DS-CNN keyword spotting: espeak-ng training words (synthetic), asterisk recordings as the
                  test set, 'nine' learned on the engine in fp32 and fp16: fp16 within 1 pp of fp32.
"""
from __future__ import annotations

import torch

from frugalnn import info
from frugalnn.models import tiny
from frugalnn.odl import kws, precision, riscv, scenario, speed
from frugalnn.report import Context, ExperimentResult, Figure, Row, Table, experiment
from frugalnn.report.figures import figure
from frugalnn.report.verdicts import at_least, at_most, equals, holds, measured, not_measured
from frugalnn.threads import torch_threads

TECHNIQUE = "ODL"
MODELS = {"ResNet8": (tiny.resnet8, tiny.RESNET8_WEIGHTS, 12.50e6, 37.06e6, 3.11, 2.0, 17.1e-3),
          "DS-CNN": (tiny.dscnn, tiny.DSCNN_WEIGHTS, 2.66e6, 7.65e6, 0.81, 3.0, 6.4e-3)}
PAPER_FP16_SPEEDUP = 1.72


def _count_rows(rows, table):
    from frugalnn.cost import profile

    for name, (ctor, weights, fwd, step, *_rest) in MODELS.items():
        model = ctor().eval()
        x = tiny.example_input(model)
        p = profile(model, x)
        s = tiny.step_macs(model, x)
        w = tiny.weight_count(model)
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} weights (conv + linear)", weights, w, "",
                        **equals(w, weights)))
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} forward MACs (cost.profile)", f"{fwd / 1e6:.2f} M",
                        p.macs, "MAC", **equals(round(p.macs / 1e4) * 1e4, fwd)))
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} MACs per training step", f"{step / 1e6:.2f} M", s, "MAC",
                        notes="forward + weight grad + input grad of every layer but the first",
                        **equals(round(s / 1e4) * 1e4, step)))
        table.append([name, w, p.macs, s])


def _speed(ctx: Context, rows, table, mem_table):
    hz, where = speed.clock_hz()
    repeats = 5 if ctx.quick else 15
    for name, (ctor, _w, _f, step_paper, mac_clk_paper, target, _t) in MODELS.items():
        torch.manual_seed(ctx.seed)
        model = ctor().eval()
        x = tiny.example_input(model)
        # quick mode compiles DS-CNN only: inductor takes over a minute per model on 2 shared cores
        compiled = not ctx.quick or name == "DS-CNN"
        with torch_threads(1):
            fns, notes = speed.step_fns(model, x, 3, compiled=compiled)
            t = speed.time_cpu(fns, repeats=repeats)
        eager, e32, e16 = t["torch eager"].median_s, t["engine fp32"].median_s, t["engine fp16"].median_s
        macs = tiny.step_macs(model, x)
        note = (f"batch 1, one thread, forward + backward + SGD, BN folded on both sides; median of {repeats} "
                f"interleaved samples of thread CPU time; engine {e32 * 1e3:.3f} ms, torch eager {eager * 1e3:.3f} ms; "
                f"{info.machine_line(1)}")
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} training step: engine fp32 speed-up over torch eager",
                        f">= {target:g}x (issue target)", round(eager / e32, 3), "x", notes=note, headline=name == "DS-CNN",
                        **at_least(eager / e32, target, full=1.0, partly=0.5)))
        if "torch.compile" in t:
            tc = t["torch.compile"].median_s
            rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} training step: engine fp32 speed-up over torch.compile",
                            None, round(tc / e32, 3), "x",
                            **measured(f"{notes['torch.compile']}; torch.compile step {tc * 1e3:.3f} ms")))
        else:
            reason = notes.get("torch.compile", "quick mode: inductor compiles DS-CNN only (over a minute per model "
                                                 "on this machine); full mode measures ResNet8 too")
            rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} training step: engine fp32 speed-up over torch.compile",
                            None, None, "x", **not_measured(reason)))
        mac_clk = macs / (e32 * hz) if hz == hz else float("nan")
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} MAC/clk, engine fp32, one x86 core", mac_clk_paper,
                        round(mac_clk, 3) if mac_clk == mac_clk else None, "MAC/clk",
                        **(measured(f"{macs} MACs per step / ({e32 * 1e3:.3f} ms x {hz / 1e9:.3f} GHz, clock from "
                                    f"{where}); the paper's figure is 8 RISC-V cores with fp16 SIMD: a different "
                                    "machine, shown beside ours, not a claim to test here")
                           if mac_clk == mac_clk else not_measured(f"clock not readable ({where})"))))
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} step speed, engine fp16 vs fp32 on this CPU",
                        f"{PAPER_FP16_SPEEDUP}x (RISC-V, packed fp16 SIMD)", round(e32 / e16, 3), "x",
                        **measured("AVX2 has no fp16 arithmetic: fp16 is storage only, widened by F16C (vcvtph2ps) "
                                   "before every FMA and rounded back on every store, so it adds work; it pays only "
                                   "where memory bandwidth binds, which a batch-1 step of these small models does not")))
        import frugalnn.odl as odl

        b32 = odl.compile(model, autotune=False).bytes()
        b16 = odl.compile(model, dtype="fp16", autotune=False).bytes()
        try:
            tb = speed.torch_step_peak_bytes(model, x, 3)
        except Exception as e:  # noqa: BLE001 - the profiler is optional; the row says why
            tb = None
            why = f"{type(e).__name__}: {e}"
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} memory per step, engine fp16 / fp32", 0.5,
                        round(b16 / b32, 3), "", **at_most(b16 / b32, 0.55)))
        rows.append(Row(TECHNIQUE, "odl_primitives", f"{name} memory per step, engine fp32 / torch eager", None,
                        round(b32 / tb, 3) if tb else None, "",
                        **(measured(f"engine {b32} B (every activation and its gradient, weights, grads, the im2col "
                                    f"scratch); torch eager peak {tb} B (parameters + the CPU profiler's running "
                                    "allocation peak over one step)") if tb else not_measured(why))))
        table.append([name, eager * 1e3, t["torch.compile"].median_s * 1e3 if "torch.compile" in t else None,
                      e32 * 1e3, e16 * 1e3, eager / e32, mac_clk, mac_clk_paper])
        mem_table.append([name, b32, b16, tb])


def _precision(rows):
    r = precision.error_vs_k()
    ks = r["K"]
    slopes = {n: precision.slope(ks, r[n]) for n in r if n != "K"}
    s16 = slopes["fp16 accumulation"]
    rows.append(Row(TECHNIQUE, "odl_primitives", "fp16-accumulation error growth: slope of log(error) vs log(K)",
                    "grows like sqrt(K) (0.5)", round(s16, 3), "",
                    notes=", ".join(f"{n}: {v:.3f}" for n, v in slopes.items()),
                    **holds(abs(s16 - 0.5) <= 0.15, "reproduced if the slope is within 0.15 of 0.5")))
    fig, ax = figure(6, 4)
    for n in r:
        if n != "K":
            ax.loglog(ks, r[n], "o-", label=n)
    ax.loglog(ks, [r["fp16 accumulation"][0] * (k / ks[0]) ** 0.5 for k in ks], "k--", label="sqrt(K)")
    ax.set_xlabel("reduction length K")
    ax.set_ylabel("relative RMS error vs float64")
    ax.legend(fontsize=7)
    ax.set_title("ODL matmul [16 x K] . [K x 64], fp16 operands", fontsize=9)
    table = Table("fp16 matmul error against K (relative RMS vs float64)", ["K", *[n for n in r if n != "K"]],
                  [[k, *[r[n][i] for n in r if n != "K"]] for i, k in enumerate(ks)],
                  "random N(0,1) fp16 operands, 3 seeds; fp16 accumulation rounds after every k (the paper's kernels)")
    return Figure.from_matplotlib(fig, "odl_fp16_error_vs_k", "fp16 error against K"), table


def _riscv(rows):
    try:
        r = riscv.proxy()
    except riscv.Unavailable as e:
        rows.append(Row(TECHNIQUE, "odl_primitives", "RISC-V proxy: Conv2d training step instructions, fp32 / fp16",
                        PAPER_FP16_SPEEDUP, None, "x", **not_measured(str(e))))
        return None
    for variant, ratio in r["ratios"].items():
        rows.append(Row(TECHNIQUE, "odl_primitives",
                        f"RISC-V proxy ({variant}): Conv2d training step instructions fp32 / fp16", PAPER_FP16_SPEEDUP,
                        round(ratio, 3), "x", notes=r["notes"],
                        **(at_least(ratio, PAPER_FP16_SPEEDUP, full=0.9, partly=0.5) if variant == r["claim_variant"]
                           else measured("instruction-count proxy (no cache or pipeline model)"))))
    return Table("RISC-V instruction counts of one Conv2d training step (spike)", r["columns"], r["rows"], r["notes"])


@experiment("odl_primitives", title="ODL: counts, batch-1 step speed vs torch, MAC/clk, fp16, memory, RISC-V proxy")
def odl_primitives(ctx: Context) -> ExperimentResult:
    rows, counts, speeds, mem = [], [], [], []
    ctx.step(0.02, "counts")
    _count_rows(rows, counts)
    ctx.step(0.1, "step speed")
    _speed(ctx, rows, speeds, mem)
    ctx.step(0.8, "fp16 error vs K")
    fig, prec_table = _precision(rows)
    ctx.step(0.9, "RISC-V proxy")
    rv_table = _riscv(rows)
    tables = [Table("Model counts", ["model", "weights", "forward MACs", "MACs per step"], counts),
              Table("One training step, batch 1, one thread (ms)",
                    ["model", "torch eager", "torch.compile", "engine fp32", "engine fp16", "engine fp32 x vs eager",
                     "MAC/clk (x86, 1 core)", "paper MAC/clk (8 RISC-V cores)"], speeds),
              Table("Bytes per training step", ["model", "engine fp32", "engine fp16", "torch eager (peak)"], mem),
              prec_table] + ([rv_table] if rv_table else [])
    return ExperimentResult(rows=rows, tables=tables, figures=[fig])


@experiment("odl_scenario", title="ODL: ResNet8 learns Fashion-MNIST classes 8-9 on device, fp32 vs fp16")
def odl_scenario(ctx: Context) -> ExperimentResult:
    from frugalnn.data import image_classification

    data = image_classification("fashion-mnist")
    ctx.step(0.05, "pretraining + on-device learning")
    with torch_threads(1):
        r = scenario.run(data, quick=ctx.quick, seed=ctx.seed)
    sz = r["sizes"]
    what = (f"ResNet8 pretrained with frugalnn.train on {sz['n_pre']} Fashion-MNIST images of classes 0-7 "
            f"({sz['pre_epochs']} epochs), then {r['fp32']['steps']} sample steps on the engine: {sz['n_new']} images "
            f"of classes 8-9, one replayed old-class image after every {sz['replay_every']} new one(s) from a buffer "
            f"of {sz['replay']}; SGD lr {sz['lr']}; {sz['n_test']} test images ({data.source})")
    rows = []
    for dt in ("fp32", "fp16"):
        rows.append(Row(TECHNIQUE, "odl_scenario", f"old-class (0-7) test accuracy after on-device learning, {dt}", None,
                        round(r[dt]["old"], 2), "%", notes=f"before: {r['before']['old']:.2f}%. {what}",
                        **measured()))
        rows.append(Row(TECHNIQUE, "odl_scenario", f"new-class (8-9) test accuracy after on-device learning, {dt}", None,
                        round(r[dt]["new"], 2), "%", **measured(f"before: {r['before']['new']:.2f}%")))
        rows.append(Row(TECHNIQUE, "odl_scenario", f"time per sample step, {dt} (x86, 1 thread)", "17.1 ms (ResNet8, MCU)",
                        round(r[dt]["step_s"] * 1e3, 3), "ms", **measured("median thread CPU time of one engine step")))
    diff = abs(r["fp16"]["all"] - r["fp32"]["all"])
    rows.append(Row(TECHNIQUE, "odl_scenario", "|fp16 - fp32| test accuracy (all classes) after on-device learning",
                    "fp16 loses <= 1 pp (issue)", round(diff, 2), "pp", headline=True,
                    notes=f"fp32 {r['fp32']['all']:.2f}%, fp16 {r['fp16']['all']:.2f}%", **at_most(diff, 1.0)))
    table = Table("On-device learning (test accuracy %, ms per sample step)",
                  ["dtype", "old classes", "new classes", "all", "ms / step", "mean loss (last 50 steps)"],
                  [["pretrained (torch)", r["before"]["old"], r["before"]["new"], r["before"]["all"], None, None]]
                  + [[dt, r[dt]["old"], r[dt]["new"], r[dt]["all"], r[dt]["step_s"] * 1e3, r[dt]["final_loss"]]
                     for dt in ("fp32", "fp16")], what)
    return ExperimentResult(rows=rows, tables=[table], figures=[])


@experiment("odl_kws", title="ODL: DS-CNN learns a new keyword on device (espeak-ng train, asterisk test), fp32 vs fp16")
def odl_kws(ctx: Context) -> ExperimentResult:
    ctx.step(0.05, "synthesis, MFCCs, pretraining, on-device learning")
    try:
        with torch_threads(1):
            r = kws.run(quick=ctx.quick, seed=ctx.seed)
    except kws.KwsDataMissing as e:
        return ExperimentResult(rows=[Row(TECHNIQUE, "odl_kws", "DS-CNN learns a new keyword on device: |fp16 - fp32| "
                                          "accuracy", "fp16 within 1 pp", None, "pp", **not_measured(str(e)))],
                                tables=[], figures=[])
    sz = r["sizes"]
    what = (f"DS-CNN on 49x10 MFCCs (python_speech_features, 8 kHz, 40 ms / 20 ms). Train: {r['n_train']} "
            f"SYNTHETIC words from Debian espeak-ng ({len(kws.VOICES)} voices x {len(kws.VARIANTS)} variants, random "
            "speed / pitch, random shift, white noise 5-30 dB SNR). Test: the REAL recordings of the same ten digits in "
            f"Debian asterisk-core-sounds-en-wav (one speaker), {sz['test_variants']} shift / noise variants each "
            f"({r['n_test']} samples from 10 recordings). Pretrained in torch on zero..eight ({sz['pre_epochs']} "
            f"epochs), then 'nine' learned on the engine: {r['fp32']['steps']} sample steps ({sz['passes']} passes, one "
            f"replayed old word after each new one), SGD lr {sz['lr']}")
    rows = []
    for dt in ("fp32", "fp16"):
        rows.append(Row(TECHNIQUE, "odl_kws", f"KWS old-word accuracy (real recordings) after on-device learning, {dt}",
                        None, round(r[dt]["old"], 2), "%", notes=f"before: {r['before']['old']:.2f}%. {what}",
                        **measured()))
        rows.append(Row(TECHNIQUE, "odl_kws", f"KWS new-word ('nine') accuracy after on-device learning, {dt}", None,
                        round(r[dt]["new"], 2), "%", **measured()))
        rows.append(Row(TECHNIQUE, "odl_kws", f"KWS time per sample step, {dt} (x86, 1 thread)", "6.4 ms (DS-CNN, MCU)",
                        round(r[dt]["step_s"] * 1e3, 3), "ms", **measured("median thread CPU time of one engine step")))
    diff = abs(r["fp16"]["all"] - r["fp32"]["all"])
    rows.append(Row(TECHNIQUE, "odl_kws", "KWS |fp16 - fp32| accuracy (all words) after on-device learning",
                    "fp16 loses <= 1 pp (issue)", round(diff, 2), "pp",
                    notes=f"fp32 {r['fp32']['all']:.2f}%, fp16 {r['fp16']['all']:.2f}%; {r['n_test']} test samples "
                          "(1 pp = 1 sample)", **at_most(diff, 1.0)))
    table = Table("Keyword spotting on device (accuracy % on real recordings, ms per sample step)",
                  ["dtype", "old words", "new word", "all", "ms / step"],
                  [["pretrained (torch)", r["before"]["old"], r["before"]["new"], r["before"]["all"], None]]
                  + [[dt, r[dt]["old"], r[dt]["new"], r[dt]["all"], r[dt]["step_s"] * 1e3] for dt in ("fp32", "fp16")],
                  what)
    return ExperimentResult(rows=rows, tables=[table], figures=[])
