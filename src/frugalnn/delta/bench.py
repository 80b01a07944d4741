"""`frugalnn bench delta`: the delta-inference engine against torch's dense per-frame inference, batch 1,
on 32-frame moving-image clips, across activation densities.

Model: FrameCNN (delta layers after the input and every ReLU) with random weights; the density is set by
the quantization step (the same step in every layer: a larger step, fewer changes). Contenders, timed
interleaved per case (each call runs the whole clip: reset + every frame):
  torch dense per frame                 the same network without delta layers, eval, no_grad, contiguous
  torch dense per frame, channels-last  the same in channels-last
  engine                                frugalnn.delta.compile(model) at this step
  engine, every element changed         the same stream with dense=True (the engine's own dense baseline)
Real-video cases ("video step ..."): FrameDenoiser (frugalnn.models.frame_denoiser, random weights, delta
layers after the input and every ReLU) on a held-out vtest.avi clip (opencv-doc; frugalnn.data.video) with
Gaussian sensor noise sigma 0.05, 72x96 frames. Check before timing: the engine's outputs equal a dense evaluation of the quantized network (float64
numpy, kernels/delta_ref.py) to 1e-4 on every frame. Rows carry the MAC density (engine MACs over the
clip / (frames x dense MACs)) and the activation density at the delta layers (frames 2..T).

    frugalnn bench delta [--quick] [--threads 1] [--steps 0.05 0.2 0.8]
"""
from __future__ import annotations

import numpy as np
import torch

from frugalnn.bench.accuracy import check_before_timing
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved

BASELINE = "torch dense per frame"
STEPS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def _add_arguments(p) -> None:
    p.add_argument("--steps", type=float, nargs="+", default=None, help="quantization steps (density knob)")
    p.add_argument("--video-steps", type=float, nargs="*", default=None,
                   help="quantization steps of the real-video denoiser cases (none: skip them)")


def model_pair(seed: int = 0):
    """(dense FrameCNN in eval mode with calibrated BN statistics, its copy with delta layers)."""
    import copy

    import frugalnn
    from frugalnn.delta.nn import DeltaConfig
    from frugalnn.models.frame_cnn import frame_cnn

    torch.manual_seed(seed)
    cnn = frame_cnn()
    from frugalnn.data.moving import moving_clips

    x, _, _ = moving_clips(8, frames=4, seed=seed + 100)
    cnn.train()
    with torch.no_grad():   # BN statistics from real frames, so activations have a realistic scale
        for _ in range(3):
            cnn(torch.from_numpy(x.reshape(-1, 1, 64, 64)))
    cnn.eval()
    delta = copy.deepcopy(cnn)
    frugalnn.convert_(delta, DeltaConfig())
    return cnn, delta.eval()


def video_pair(seed: int = 0):
    """(dense FrameDenoiser in eval mode, its copy with delta layers) and a noisy real clip [T, 1, 72, 96]."""
    import copy

    import frugalnn
    from frugalnn.data.video import load_video, split_by_time, test_clips
    from frugalnn.delta.nn import DeltaConfig
    from frugalnn.models.frame_denoiser import frame_denoiser

    torch.manual_seed(seed)
    cnn = frame_denoiser().eval()
    delta = copy.deepcopy(cnn)
    frugalnn.convert_(delta, DeltaConfig(frame_shape=(1, 32, 32)))
    _, test = split_by_time(load_video("vtest").frames)
    return cnn, delta.eval(), test_clips({"vtest": test}, frames=32, per_clip=1, sigma=0.05, seed=seed)[0][1]


def set_steps(model, step: float) -> None:
    from frugalnn.delta.nn import delta_layers

    with torch.no_grad():
        for m in delta_layers(model):
            m.log_step.fill_(float(np.log(step)))


@benchmark("delta", "delta-inference engine vs torch dense per-frame, batch 1, 32-frame clips, across densities",
           _add_arguments)
def bench_delta(args: BenchArgs) -> BenchReport:
    from frugalnn import info
    from frugalnn.data.moving import moving_clips
    from frugalnn.delta import speed
    from frugalnn.delta.engine import compile as compile_stream
    from frugalnn.kernels.delta_ref import dense
    from frugalnn.threads import torch_threads

    steps = args.options.get("steps") or ((0.05, 0.2, 0.8) if args.quick else STEPS)
    vsteps = args.options.get("video_steps")
    vsteps = ((0.1, 0.4) if args.quick else (0.05, 0.1, 0.2, 0.4)) if vsteps is None else vsteps
    if any(not s > 0 for s in tuple(steps) + tuple(vsteps)):
        raise ValueError(f"--steps / --video-steps: expected values > 0, got {steps} / {vsteps}")
    frames = 16 if args.quick else 32
    clip = moving_clips(1, frames=frames, split="test", seed=7)[0][0]
    cnn, delta = model_pair()
    cases = [(f"step {s:g}", cnn, delta, clip, s) for s in steps]
    if vsteps:
        vcnn, vdelta, vclip = video_pair()
        cases += [(f"video step {s:g}", vcnn, vdelta, vclip[:frames], s) for s in vsteps]
    report = BenchReport("delta", baseline=BASELINE)
    report.meta.update({"torch": torch.__version__, "torch_isa": info.torch_isa(), "our_isa": info.kernel_isa('delta'),
                        "frames": frames, "model": "FrameCNN widths (16, 32, 64), 64x64 frames; video: FrameDenoiser "
                                                   "(16 channels, bottleneck 8), 72x96 vtest.avi frames"})
    for threads in args.threads:
        with torch_threads(threads):
            for case, dense_model, delta_model, c, step in cases:
                set_steps(delta_model, step)
                stream = compile_stream(delta_model, tuple(c.shape[1:]), threads=threads)
                outs = stream.run(c)
                err = max(float(np.abs(o - dense(stream.program, f)).max()) for o, f in zip(outs, c))
                check_before_timing(case, "engine", err, 1e-4, "max abs error vs dense quantized evaluation")
                acts = [i for i, L in enumerate(stream.program.layers) if i == 0 or L.relu]
                stream.reset()
                nz, el = 0, 0
                for t, f in enumerate(c):
                    stream.push(f)
                    if t:
                        nz += sum(stream.nonzeros[i] for i in acts)
                        el += sum(stream.program.layers[i].size for i in acts)
                mac_density = stream.total_macs / (len(c) * stream.dense_macs)
                fns = {BASELINE: speed.torch_clip_fn(dense_model, c),
                       speed.TORCH_CL: speed.torch_clip_fn(dense_model, c, channels_last=True),
                       "engine": speed.engine_clip_fn(stream, c),
                       "engine, every element changed": speed.engine_clip_fn(stream, c, dense=True)}
                t = time_interleaved(fns, repeats=args.repeats, warmup=1, min_sample_s=0.0)
                report.add_case(case, threads, t, {"MAC density": mac_density, "activation density": nz / max(el, 1),
                                                   "frames": len(c)})
    report.notes.append(
        f"Each call runs a {frames}-frame clip at batch 1 (reset + every frame). 'x vs {BASELINE}' > 1: faster "
        "than torch's dense per-frame inference of the same network (eval, no_grad). The engine's work follows "
        "the MAC density; 'every element changed' is the engine forced dense. torch "
        f"{torch.__version__} ({info.torch_isa()}), engine {info.kernel_isa('delta')}.")
    return report
