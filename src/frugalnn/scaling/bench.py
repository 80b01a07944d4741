"""Time to count a model: frugalnn.cost.profile vs the counters a user would otherwise pick, fvcore's
FlopCountAnalysis and torch.utils.flop_counter.FlopCounterMode, on the scaled RegNetY / EfficientNet
models of the scaling study.

Every contender counts the same model on the same input. Before anything is timed, each one's count
of each model is checked against the closed form `config.complexity()` (pycls-style, layer by layer)
and the bench stops on any difference: MACs must be equal exactly. Conventions differ, so each is
compared on what it should agree on:
- profile (and profile under FakeTensorMode): MACs, params and acts equal the closed form;
- FlopCounterMode counts 2 FLOPs per multiply-accumulate: its total equals 2 x MACs;
- fvcore also counts batch norm and adaptive average pooling (tests/cost/test_fvcore_convention.py):
  its total minus those two operators equals MACs, and it must count no other operator here.
Params and acts come with profile's single pass; FlopCounterMode gives FLOPs only, and fvcore needs
a second trace (ActivationCountAnalysis) for acts, which is not timed here.

    frugalnn bench scaling [--quick] [--threads 1 2]      (benchmarks/bench_scaling.py runs the same)
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from frugalnn.bench.accuracy import check_before_timing
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved

BASELINE = "torch FlopCounterMode"
PROFILE = "frugalnn profile"
FAKE = "frugalnn profile (fake tensors)"
FVCORE = "fvcore FlopCountAnalysis"
FORWARD = "forward pass only (no counting)"
FVCORE_EXTRA_OPS = ("batch_norm", "adaptive_avg_pool2d")  # fvcore counts these; the MAC convention does not
COUNT_BOUND = 0.0  # counts are integers: any difference stops the bench


def _cases(quick: bool) -> list[tuple[str, int, str, float]]:
    """(built-in model, resolution, strategy, flops factor s); 'base' is the model unscaled."""
    if quick:
        return [("regnety-400mf", 112, "dWr", 2), ("effnet-b0", 112, "dWr", 2)]
    return [(name, 224, strategy, s) for name in ("regnety-400mf", "effnet-b0")
            for strategy, s in (("base", 1), ("dWr", 4), ("dWr", 16))]


def build_case(name: str, resolution: int, strategy: str, s: float):
    """(label, config, model in eval mode, example input) of one case."""
    from frugalnn import models
    from frugalnn.scaling.strategies import scale

    cfg = models.config(name, resolution=resolution)
    if strategy != "base":
        cfg = scale(cfg, s, strategy)
    label = f"{name} {resolution}px" + ("" if strategy == "base" else f" {strategy} x{s:g}")
    return label, cfg, cfg.build().eval(), cfg.example_input(1)


def load_fvcore():
    """fvcore.nn, or the reason it cannot be used (a visible 'not measured' row, never a silent gap)."""
    try:
        import fvcore.nn as fvcore_nn
    except ImportError as e:
        return None, f"fvcore not installed ({e}); pip install fvcore (it is in frugalnn's test extra)"
    return fvcore_nn, ""


def counters(model, x, fvcore_nn=None) -> dict[str, Callable[[], Any]]:
    """Each contender as a no-argument call that counts `model` on `x` and returns its raw result."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from frugalnn.cost import Profiler, profile

    def torch_counter():
        mode = FlopCounterMode(display=False)
        with mode, torch.no_grad():
            model(x)
        return mode.get_total_flops()

    def forward():
        with torch.no_grad():
            return model(x)

    fns = {BASELINE: torch_counter, PROFILE: lambda: profile(model, x), FAKE: lambda: Profiler(fake=True)(model, x),
           FORWARD: forward}
    if fvcore_nn is not None:
        def fvcore_counter():
            with warnings.catch_warnings():  # its jit trace warns about every python-side branch
                warnings.simplefilter("ignore")
                analysis = fvcore_nn.FlopCountAnalysis(model, x)
                analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
                return analysis.total(), dict(analysis.by_operator())
        fns[FVCORE] = fvcore_counter
    return fns


def count_errors(impl: str, result, closed) -> dict[str, float]:
    """Relative difference of each quantity `impl` counts from the closed form (0 when they agree)."""
    def rel(got, want):
        return abs(got - want) / want

    if impl in (PROFILE, FAKE):
        return {q: rel(getattr(result, q), getattr(closed, q)) for q in ("macs", "params", "acts")}
    if impl == BASELINE:
        return {"macs": rel(result / 2, closed.macs)}
    if impl == FVCORE:
        total, by_op = result
        unexpected = set(by_op) - {"conv", "linear", *FVCORE_EXTRA_OPS}
        if unexpected:  # an op we do not know fvcore's convention for: the comparison would be guesswork
            return {f"unexpected op {op}": float("inf") for op in sorted(unexpected)}
        return {"macs": rel(total - sum(by_op.get(op, 0) for op in FVCORE_EXTRA_OPS), closed.macs)}
    raise ValueError(f"impl: no count check for {impl!r}")


def check_counts(case: str, fns: dict[str, Callable[[], Any]], closed) -> tuple[dict[str, str], dict[str, str]]:
    """Run every counter once; stop (CheckFailed) on any count that differs from the closed form.
    Returns (what was checked, by impl) and (why it failed, for a peer that raised: shown, not timed)."""
    checked, failed = {}, {}
    for impl, fn in fns.items():
        if impl == FORWARD:
            continue
        try:
            result = fn()
        except Exception as e:
            if impl != FVCORE:  # our own counter or torch's failing is a bug, not a missing peer
                raise
            failed[impl] = f"fvcore failed on this model: {type(e).__name__}: {e}"[:300]
            continue
        for quantity, error in count_errors(impl, result, closed).items():
            check_before_timing(case, impl, error, COUNT_BOUND, metric=f"relative {quantity} count error")
        checked[impl] = "MACs, params, acts exact" if impl in (PROFILE, FAKE) else "MACs exact"
    return checked, failed


@benchmark("scaling", "counting MACs: frugalnn.cost.profile vs fvcore FlopCountAnalysis vs torch FlopCounterMode")
def bench_scaling(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn import info
    from frugalnn.threads import torch_threads

    report = BenchReport("scaling", baseline=BASELINE)
    fvcore_nn, missing = load_fvcore()
    report.notes.append(
        f"Time to count one model (batch 1) once. 'x vs {BASELINE}' > 1 means faster at counting than torch's own "
        "counter, measured in the same run. Before timing, every counter's MACs were checked equal to the closed "
        f"form config.complexity() (FlopCounterMode: FLOPs / 2; fvcore: total minus its {', '.join(FVCORE_EXTRA_OPS)} "
        "terms); 'counts checked' says what was compared. The forward pass alone is the floor every counter that "
        f"runs the model pays. Torch's CPU kernels: {info.torch_isa()}.")
    for name, resolution, strategy, s in _cases(args.quick):
        case, cfg, model, x = build_case(name, resolution, strategy, s)
        closed = cfg.complexity()
        fns = counters(model, x, fvcore_nn)
        for threads in args.threads:
            with torch_threads(threads):
                checked, failed = check_counts(case, fns, closed)
                timed = {impl: fn for impl, fn in fns.items() if impl not in failed}
                # the checking call above was each counter's warm-up (fvcore and fake tensors take ~1 s a call)
                timings = time_interleaved(timed, repeats=args.repeats, warmup=0)
            report.add_case(case, threads, timings, {"MACs": closed.macs})
            for row in report.rows[-len(timings):]:
                row.extra["counts checked"] = checked.get(row.impl, "-")
            for impl, reason in ({FVCORE: missing} if fvcore_nn is None else failed).items():
                report.add_not_measured(case, impl, threads, reason)
    report.meta["torch"] = torch.__version__
    report.meta["fvcore"] = info.package_version("fvcore")
    report.meta["torch_isa"] = info.torch_isa()
    return report
