"""Delta Activation Layer (Yousefzadeh & Sifalakis) against its claims, on moving-image clips.

  delta_sparsity   the refinement recipe (frugalnn.delta.train): a per-frame CNN trained on frames,
                   converted (DeltaConfig) and fine-tuned on 2-frame clips with the sparsity loss, for a
                   sweep of `rate`; on 32-frame test clips: the baseline's spatial density and accuracy,
                   each delta model's temporal density and accuracy, the DeltaCNN-style threshold baseline
                   (no training) on the same engine at matched density; MACs from the engine's counters
                   against dense MACs and against the sparsity loss's estimate; wall-clock, batch 1,
                   1 thread, against torch dense per-frame inference and against the engine with every
                   element changed, and the crossover density; the Pareto figure.

The clips are synthetic motion over real images (frugalnn.data.moving). Quick mode: small training
(QUICK in delta/train.py), a 2-3 point rate sweep, 100 test clips; the accuracy noise of 100 clips
(binomial std ~4 pp) exceeds the 2 pp rule, which each row states. The paper's ResNet-50 / UCF101
runs are out of reach on this machine and are not implied. The real-camera-video denoising task is
the experiment delta_video (frugalnn.delta.video_experiment, registered by the import below).
"""
from __future__ import annotations

import numpy as np
import torch

from frugalnn import info
from frugalnn.bench.harness import time_interleaved
from frugalnn.delta import speed
from frugalnn.delta import video_experiment  # noqa: F401  (registers delta_video)
from frugalnn.delta.engine import compile as compile_stream
from frugalnn.delta.nn import Clips
from frugalnn.delta.sparsity import estimated_macs
from frugalnn.delta.sweep import density_verdict, matched, pareto, pick
from frugalnn.delta.train import FULL, QUICK, accuracy, clip_logits, delta_density, finetune_delta, make_data, \
    spatial_density, train_baseline
from frugalnn.kernels.delta_ref import dense as dense_eval
from frugalnn.report import ExperimentResult, Row, Table, experiment
from frugalnn.report.verdicts import at_least, holds, measured, not_measured, within
from frugalnn.threads import torch_threads

TECHNIQUE = "delta"
PAPER_SPATIAL = 0.53
PAPER_TEMPORAL = "0.04-0.16"
PAPER_ACC = (73.0, 67.3)
LOSS_PP = 2.0
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
FRAME = (1, 64, 64)


def noise_pp(acc: float, n: int) -> float:
    p = min(max(acc / 100, 0.0), 1.0)
    return 100 * (p * (1 - p) / max(n, 1)) ** 0.5


def engine_eval(stream, clips: np.ndarray, labels: np.ndarray, quantized_layers: list[int]) -> dict:
    """Run the engine over clips: clip accuracy, temporal density at `quantized_layers` (frames 2..T), MACs
    per frame (frames 2..T and frame 1), per-frame logits."""
    logits, macs, first, nz = [], [], [], 0
    sizes = [stream.program.layers[i].size for i in quantized_layers]
    n_el = 0
    for clip in clips:
        stream.reset()
        out = []
        for t, f in enumerate(clip):
            out.append(stream.push(f))
            if t == 0:
                first.append(stream.macs)
                continue
            macs.append(stream.macs)
            nz += sum(stream.nonzeros[i] for i in quantized_layers)
            n_el += sum(sizes)
        logits.append(out)
    lg = torch.from_numpy(np.array(logits))
    return {**accuracy(lg, torch.from_numpy(labels)), "density": nz / max(n_el, 1),
            "macs": float(np.mean(macs)), "first_macs": float(np.mean(first)), "logits": lg}


def _activation_layers(stream) -> list[int]:
    """The input and every ReLU layer: where delta layers sit and where the threshold applies."""
    return [i for i, L in enumerate(stream.program.layers) if i == 0 or L.relu]


@experiment("delta_sparsity", title="Delta Activation Layer: temporal sparsity, delta-inference MACs and speed")
def delta_sparsity(ctx) -> ExperimentResult:
    sizes = QUICK if ctx.quick else FULL
    rates = sizes.rates[:3] if ctx.quick else sizes.rates
    provenance = info.machine_line(1)
    ctx.step(0.01, "clips")
    data = make_data(sizes, ctx.seed)
    n_test = len(data.test_y)
    with torch_threads(ctx.threads):
        ctx.step(0.03, "baseline")
        base_cnn, base_fit = train_baseline(data, sizes, ctx.seed)
        base = {**accuracy(clip_logits(base_cnn, data.test_x), data.test_y),
                "density": spatial_density(base_cnn, data.test_x)}
        deltas, models = [], {}
        for i, rate in enumerate(rates):
            ctx.step(0.1 + 0.5 * i / len(rates), f"delta fine-tune, rate {rate:g}")
            cnn, fit = finetune_delta(base_cnn, data, rate, sizes, ctx.seed)
            dens = delta_density(cnn, data.test_x)
            deltas.append({"rate": rate, **accuracy(clip_logits(cnn, data.test_x), data.test_y),
                           "density": dens["all"], "per_layer": dens, "seconds": fit.seconds})
            models[rate] = cnn
    chosen, within_loss = pick(deltas, base["clip_accuracy"], "clip_accuracy", LOSS_PP)
    cnn = models[chosen["rate"]]
    ratio = base["density"] / max(chosen["density"], 1e-12)
    loss_pp = base["clip_accuracy"] - chosen["clip_accuracy"]
    noise = noise_pp(base["clip_accuracy"], n_test)
    what = (f"{data.what}; FrameCNN (3 conv stages + a residual block, {sum(p.numel() for p in base_cnn.parameters())} "
            f"params); baseline {sizes.base_epochs} epochs on {2 * sizes.n_train} frames, delta fine-tune "
            f"{sizes.delta_epochs} epoch(s) on {sizes.n_train} 2-frame clips; {n_test} test clips of "
            f"{sizes.test_frames} frames; clip accuracy = time-averaged softmax")
    rows = [
        Row(TECHNIQUE, "delta_sparsity", "dense baseline: spatial density (input + post-ReLU)", PAPER_SPATIAL,
            round(base["density"], 4), "fraction", **measured(what)),
        Row(TECHNIQUE, "delta_sparsity", "dense baseline: clip accuracy", PAPER_ACC[0], round(base["clip_accuracy"], 2),
            "%", **measured(f"paper: ResNet-50 on UCF101; ours: {n_test} clips, binomial std {noise:.1f} pp")),
        Row(TECHNIQUE, "delta_sparsity", f"delta model (rate {chosen['rate']:g}): temporal density", PAPER_TEMPORAL,
            round(chosen["density"], 4), "fraction", **measured("nonzero deltas at the input and every ReLU, "
                                                                "frames 2..T of the test clips")),
        Row(TECHNIQUE, "delta_sparsity", f"delta model (rate {chosen['rate']:g}): clip accuracy", PAPER_ACC[1],
            round(chosen["clip_accuracy"], 2), "%", **measured(f"accuracy loss {loss_pp:.2f} pp")),
    ]
    if noise > LOSS_PP:
        # as in the DFP parity row: the test set's sampling noise alone exceeds the 2 pp rule, which cannot
        # then be decided; full mode (600 clips) applies it whenever the noise is below it
        verdict = measured(f"the accuracy half of the rule is undecidable here: the test-set binomial std "
                           f"({noise:.1f} pp over {n_test} clips) exceeds {LOSS_PP} pp. Density ratio of the "
                           f"lowest-density model within {LOSS_PP} pp (measured loss {loss_pp:.2f} pp): would be "
                           f"{'REPRODUCED' if within_loss and ratio >= 3 else 'NOT REPRODUCED'} at >= 3x")
    else:
        verdict = density_verdict(ratio, within_loss, f"no rate kept the accuracy loss <= {LOSS_PP} pp")
    verdict["rule"] += (f"; among rates {list(rates)} the lowest density within {LOSS_PP} pp of the baseline; "
                        f"test-set binomial std {noise:.1f} pp")
    rows.append(Row(TECHNIQUE, "delta_sparsity", "density reduction (spatial / temporal) at <= 2 pp accuracy loss",
                    "~3x (0.53 -> 0.04-0.16, 5.7 pp loss)", round(ratio, 3), "x", headline=True, **verdict))
    sweep = Table("Accuracy and density: dense baseline, delta models (rate sweep)",
                  ["model", "rate", "clip accuracy (%)", "frame accuracy (%)", "density", "density kind",
                   "fine-tune s"],
                  [["dense baseline", "-", base["clip_accuracy"], base["frame_accuracy"], base["density"], "spatial",
                    base_fit.seconds]]
                  + [["delta", r["rate"], r["clip_accuracy"], r["frame_accuracy"], r["density"], "temporal",
                      r["seconds"]] for r in deltas], what)
    layer_table = Table(f"Temporal density per delta layer (rate {chosen['rate']:g})", ["layer", "density"],
                        [[k, v] for k, v in chosen["per_layer"].items()])

    # ---- the engine: threshold baseline, MACs, exactness ----
    ctx.step(0.65, "engine: threshold sweep")
    n_eng = 20 if ctx.quick else 150
    clips = data.test_x[:n_eng].numpy()
    labels = data.test_y[:n_eng].numpy()
    delta_stream = compile_stream(cnn, FRAME)
    d_eng = engine_eval(delta_stream, clips, labels, _activation_layers(delta_stream))
    base_stream = compile_stream(base_cnn, FRAME)
    b_eng = engine_eval(base_stream, clips, labels, _activation_layers(base_stream))
    thr = []
    for t in (THRESHOLDS[1::2] if ctx.quick else THRESHOLDS):
        s = compile_stream(base_cnn, FRAME, threshold=t)
        r = engine_eval(s, clips, labels, _activation_layers(s))
        thr.append({"threshold": t, **{k: v for k, v in r.items() if k != "logits"}})
    match = matched(thr, d_eng["density"])
    rows.append(Row(TECHNIQUE, "delta_sparsity", "threshold-only baseline (no training) at matched density: clip "
                    "accuracy", None, round(match["clip_accuracy"], 2), "%",
                    **measured(f"threshold {match['threshold']} gives density {match['density']:.4f}; the trained "
                               f"delta model on the same {len(clips)} clips: density {d_eng['density']:.4f}, accuracy "
                               f"{d_eng['clip_accuracy']:.2f}%; dense model through the engine "
                               f"{b_eng['clip_accuracy']:.2f}%")))
    thr_table = Table("Threshold-only baseline (DeltaCNN style, on the dense model) through the engine",
                      ["threshold", "temporal density", "clip accuracy (%)", "MACs / frame", "MACs / dense MACs"],
                      [[r["threshold"], r["density"], r["clip_accuracy"], r["macs"],
                        r["macs"] / delta_stream.dense_macs] for r in thr],
                      f"first {len(clips)} test clips; density and MACs over frames 2..T")

    dense_macs = delta_stream.dense_macs
    rows.append(Row(TECHNIQUE, "delta_sparsity", "delta-inference MACs per frame / dense MACs (engine counters)", None,
                    round(d_eng["macs"] / dense_macs, 4), "fraction",
                    **measured(f"{d_eng['macs']:.0f} of {dense_macs} MACs per frame (frames 2..T); the first frame "
                               f"{d_eng['first_macs']:.0f}")))
    model = Clips(cnn)
    est = []
    for clip in data.test_x[:min(n_eng, 16)]:
        with torch.no_grad():
            cnn.eval()
            model(clip[None])
        est.append(estimated_macs(model, frame_shape=FRAME))
    eng16 = engine_eval(delta_stream, clips[:len(est)], labels[:len(est)], _activation_layers(delta_stream))
    rows.append(Row(TECHNIQUE, "delta_sparsity", "engine MACs / the sparsity loss's MAC estimate", 1.0,
                    round(eng16["macs"] / max(np.mean(est), 1e-9), 4), "x",
                    **within(eng16["macs"] / max(np.mean(est), 1e-9), 1.0, 0.1)))
    prog = delta_stream.program
    out = delta_stream.run(clips[0])
    err = float(np.max(np.abs(out - np.array([dense_eval(prog, f) for f in clips[0]]))))
    rows.append(Row(TECHNIQUE, "delta_sparsity", "engine output vs dense evaluation of the quantized network (max "
                    f"abs difference, one {len(clips[0])}-frame clip)", 0, err, "",
                    **holds(err < 1e-4, "< 1e-4 (float rounding)")))

    # ---- wall-clock, batch 1, 1 thread ----
    ctx.step(0.85, "wall-clock")
    repeats = 5 if ctx.quick else 11
    clip = clips[1]
    with torch_threads(1):
        s1 = compile_stream(cnn, FRAME, threads=1)
        fns = {speed.TORCH: speed.torch_clip_fn(base_cnn, clip),
               speed.TORCH_CL: speed.torch_clip_fn(base_cnn, clip, channels_last=True),
               "engine, trained delta model": speed.engine_clip_fn(s1, clip),
               "engine, every element changed": speed.engine_clip_fn(s1, clip, dense=True)}
        thr_streams = {t: compile_stream(base_cnn, FRAME, threshold=t, threads=1)
                       for t in (THRESHOLDS[1::2] if ctx.quick else THRESHOLDS)}
        for t, s in thr_streams.items():
            fns[f"engine, threshold {t}"] = speed.engine_clip_fn(s, clip)
        tm = time_interleaved(fns, repeats=repeats, warmup=1, min_sample_s=0.0)
    t_torch = min(tm[speed.TORCH].median_s, tm[speed.TORCH_CL].median_s)
    t_delta = tm["engine, trained delta model"].median_s
    t_dense = tm["engine, every element changed"].median_s
    x = t_torch / t_delta
    s1.run(clip)
    mac_density = s1.total_macs / (len(clip) * dense_macs)
    points = [(mac_density, t_delta), (1.0, t_dense)]
    for t, s in thr_streams.items():
        s.run(clip)
        points.append((s.total_macs / (len(clip) * dense_macs), tm[f"engine, threshold {t}"].median_s))
    cross = speed.crossover(points, t_torch)
    note = (f"{len(clip)}-frame clip (reset + every frame), batch 1, 1 thread, median of {repeats} interleaved; "
            f"torch {torch.__version__} {info.torch_isa()} (the faster of contiguous / channels-last), engine "
            f"{info.kernel_isa('delta')}; MAC density of the clip {mac_density:.4f} (first frame included)")
    rows.append(Row(TECHNIQUE, "delta_sparsity", "engine at the trained density vs torch dense per-frame (speed-up)",
                    None, round(x, 3), "x", **at_least(x, 2.0, full=1.0, partly=0.5), notes=note))
    rows[-1].rule += " (the issue's target: >= 2x faster than torch dense)"
    rows.append(Row(TECHNIQUE, "delta_sparsity", "engine at the trained density vs engine with every element changed",
                    None, round(t_dense / t_delta, 3), "x", **measured(note)))
    rows.append(Row(TECHNIQUE, "delta_sparsity", "crossover MAC density (engine breaks even with torch dense)", None,
                    None if cross is None else round(cross, 4), "fraction",
                    **(measured("least-squares line through (MAC density, time) of the trained model, the threshold "
                                "sweep and every-element-changed, met with torch's time") if cross is not None else
                       not_measured("the engine's time did not rise with density in this run"))))
    speed_table = Table(f"Wall-clock per {len(clip)}-frame clip (batch 1, 1 thread)", ["contender", "median ms", "x vs torch",
                                                                            "MAC density"],
                        [[k, v.median_s * 1e3, t_torch / v.median_s, None] for k, v in tm.items()], note)
    ctx.step(0.98, "figure")
    fig = pareto(base, deltas, thr, "clip_accuracy", "clip accuracy (%)",
                 f"Accuracy vs density on moving-image clips\n{provenance}", "delta_pareto",
                 "Accuracy against activation density (Pareto)", "dense baseline (spatial)")
    return ExperimentResult(rows=rows, tables=[sweep, layer_table, thr_table, speed_table], figures=[fig])
