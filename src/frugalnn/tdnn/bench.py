"""`frugalnn bench tdnn`: embedding extraction of the paper's Base / Mobile / Small subnets (full width, random
weights: speed does not depend on them) on one 3 s utterance (301 frames), eager against torch.compile.

Baseline: Base, eager. Each case checks before timing: the Supernet forward, the extracted TDNN and (for the
compiled contender) the compiled TDNN must agree (max abs difference <= 1e-4 relative to the output scale).
Speeds are also given as seconds of audio embedded per second.

    frugalnn bench tdnn [--quick] [--threads 1 2] [--no-compile]
    (benchmarks/bench_tdnn.py runs the same)
"""
from __future__ import annotations

from frugalnn.bench.accuracy import check_before_timing
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved

BASELINE = "Base eager"
FRAMES = 301


def _add_arguments(p) -> None:
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile contenders")


def _rel_err(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@benchmark("tdnn", "EfficientTDNN subnets (Base/Mobile/Small, 301 frames): eager vs torch.compile", _add_arguments)
def bench_tdnn(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn import info
    from frugalnn.tdnn.config import PAPER, SupernetConfig
    from frugalnn.tdnn.cost import analytic_macs
    from frugalnn.tdnn.supernet import Supernet
    from frugalnn.threads import torch_threads

    report = BenchReport("tdnn", baseline=BASELINE)
    report.meta.update({"machine": info.machine_line(None), "torch": torch.__version__, "frames": FRAMES})
    torch.manual_seed(0)
    net = Supernet(SupernetConfig()).eval()
    x = torch.randn(1, 80, FRAMES)
    names = ["Small"] if args.quick else list(PAPER)
    if "Base" not in names:
        names = ["Base", *names]
    models = {}
    for name in names:
        net.set_active_subnet(PAPER[name])
        sub = net.get_active_subnet().eval()
        with torch.no_grad():
            check_before_timing(name, "extracted vs supernet", _rel_err(sub(x), net(x)), 1e-5, "max rel err")
        models[f"{name} eager"] = sub
    compiled = {}
    if not args.options.get("no_compile"):
        for name in (["Small"] if args.quick else names):
            try:
                cm = torch.compile(models[f"{name} eager"])
                with torch.no_grad():
                    check_before_timing(name, "compiled", _rel_err(cm(x), models[f"{name} eager"](x)), 1e-4,
                                        "max rel err")
                compiled[f"{name} torch.compile"] = cm
            except Exception as e:  # noqa: BLE001 -- a visible row, never a silent gap
                report.add_not_measured("3 s utterance", f"{name} torch.compile", 1, f"{type(e).__name__}: {e}"[:160])
    fns = {k: (lambda m=m: m(x)) for k, m in {**models, **compiled}.items()}
    for threads in args.threads:
        with torch.no_grad(), torch_threads(threads):
            timings = time_interleaved(fns, repeats=3 if args.quick else args.repeats, warmup=2)
        extra = {}
        report.add_case("3 s utterance", threads, timings, extra)
        for row in report.rows[-len(fns):]:
            name = row.impl.split()[0]
            row.extra["MACs"] = f"{analytic_macs(PAPER[name]) / 1e6:.0f} M"
            row.extra["audio s per s"] = round(3.0 / (row.median_ms / 1e3), 1)
    report.notes.append("Random weights (extraction speed does not depend on their values); torch.compile default "
                        "inductor backend; 'audio s per s' = 3 s / median time of one utterance.")
    return report
