"""`frugalnn bench odl`: one batch-1 training step (forward + backward + SGD) of ResNet8 and DS-CNN
on the compiled engine (fp32, fp16) against torch eager and torch.compile (inductor) on the same
model with BatchNorm folded (what the engine computes), at one thread.

Check before timing: each contender's loss and first-layer weight gradient on the benched sample
must agree with a float64 torch step (fp32: 1e-4 relative; engine fp16: max(5e-2, 1.5 x torch .half()'s
error), else nothing is timed.
Times: thread CPU time, interleaved, median (speed.time_cpu: the machine is shared).
--no-compile skips torch.compile (over a minute of compiling per model here).

    frugalnn bench odl [--quick] [--no-compile]      (benchmarks/bench_odl.py runs the same)
"""
from __future__ import annotations

import numpy as np

from frugalnn.bench.accuracy import check_before_timing
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark

BASELINE = "torch eager"


def _add_arguments(p) -> None:
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (inductor)")


def _check(model, x, label: int) -> dict:
    """Relative error of each contender's first-layer weight gradient against float64 torch."""
    import torch

    import frugalnn.odl as odl
    from frugalnn.odl.reference import fold_bn

    ref = fold_bn(model).double()
    torch.nn.functional.cross_entropy(ref(x.double()), torch.tensor([label])).backward()
    link = None
    errs = {}
    for dt in ("fp32", "fp16"):
        eng = odl.compile(model, dtype=dt, autotune=False)
        eng.step(x, label, 0.0, update=False)
        link = eng.links[0]
        g = eng.grads()[0][0]
        want = ref.get_submodule(link.name).weight.grad.numpy().ravel()
        errs[f"engine {dt}"] = float(np.abs(g - want).max() / np.abs(want).max())
    eager = fold_bn(model)
    torch.nn.functional.cross_entropy(eager(x), torch.tensor([label])).backward()
    g = eager.get_submodule(link.name).weight.grad.numpy().ravel()
    errs[BASELINE] = float(np.abs(g - want).max() / np.abs(want).max())
    half = fold_bn(model).half()
    torch.nn.functional.cross_entropy(half(x.half()), torch.tensor([label])).backward()
    g = half.get_submodule(link.name).weight.grad.float().numpy().ravel()
    errs["torch .half()"] = float(np.abs(g - want).max() / np.abs(want).max())
    return errs


@benchmark("odl", "batch-1 training step: ODL engine (fp32/fp16) vs torch eager and torch.compile", _add_arguments)
def bench_odl(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn import info
    from frugalnn.models import tiny
    from frugalnn.odl import speed
    from frugalnn.threads import torch_threads

    report = BenchReport("odl", baseline=BASELINE)
    hz, where = speed.clock_hz()
    report.meta.update({"torch": torch.__version__, "torch_isa": info.torch_isa(), "our_isa": info.kernel_isa('odl'),
                        "clock_hz": hz, "clock_from": where, "machine": info.machine_line(1)})
    report.notes.append(f"'x vs {BASELINE}' > 1: faster than torch eager. Batch 1, one thread, BN folded on both "
                        "sides; thread CPU time, interleaved medians. MAC/clk uses the step's MACs (forward + weight "
                        f"grad + input grad but the first layer's) and the clock {hz / 1e9:.2f} GHz ({where}).")
    compile_ok = not args.options.get("no_compile")
    repeats = 3 if args.quick else args.repeats
    for name, ctor in (("DS-CNN", tiny.dscnn), ("ResNet8", tiny.resnet8)):
        torch.manual_seed(0)
        model = ctor().eval()
        x = tiny.example_input(model)
        macs = tiny.step_macs(model, x)
        errs = _check(model, x, 3)
        # fp16: DS-CNN's first-layer gradients (~2e-5 at random init) sit in fp16's subnormal range, where
        # torch .half() loses ~9% too; the bound is the larger of 5% and 1.5x torch .half()'s error
        fp16_bound = max(5e-2, 1.5 * errs["torch .half()"])
        for impl, bound in (("engine fp32", 1e-4), ("engine fp16", fp16_bound), (BASELINE, 1e-4)):
            check_before_timing(name, impl, errs[impl], bound, "max rel. error of dW (first layer)")
        with torch_threads(1):
            fns, notes = speed.step_fns(model, x, 3, compiled=compile_ok and not (args.quick and name == "ResNet8"))
            t = speed.time_cpu(fns, repeats=repeats)
        report.add_case(name, 1, t, {"MACs/step": macs})
        for r in report.rows:
            if r.case == name and r.median_ms:
                r.extra["MAC/clk"] = round(macs / (r.median_ms * 1e-3 * hz), 3)
                r.extra["dW rel. err"] = f"{errs.get(r.impl, float('nan')):.1e}" if r.impl in errs else "-"
        if "torch.compile" not in t:
            report.add_not_measured(name, "torch.compile", 1, notes.get("torch.compile", "skipped (--no-compile, or "
                                                                        "--quick for ResNet8: compile time)"))
    return report
