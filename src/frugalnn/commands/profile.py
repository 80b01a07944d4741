"""`frugalnn profile MODEL_SPEC`: MACs / params / activations table of a model.

MODEL_SPEC is a built-in model name (`frugalnn profile --list`) or `module:function` /
`path/to/file.py:function`, where the function takes no arguments and returns
(model, example_input); example_input is a tensor, a tuple of positional inputs or a dict of
keyword inputs.

Sizes from the command line are bounded before anything is allocated: a built-in model may have
at most MAX_BLOCKS blocks, and its estimated memory -- 4 bytes per parameter and input element,
plus every conv/linear output of one forward pass unless --fake (the closed-form
`config.complexity()`, an upper bound on what a no-grad forward holds at once) -- must fit in the
memory available now (MemAvailable, or the cgroup limit if lower; FALLBACK_LIMIT when neither can
be read). Errors from building or running a model become one-line errors (--debug: traceback).
"""
from __future__ import annotations

MAX_BLOCKS = 10_000  # far past any real network (RegNetY-32GF has 20 blocks), and still quick to build
FALLBACK_LIMIT = 8 << 30  # bytes, when the available memory cannot be read


def register(sub) -> None:
    p = sub.add_parser("profile", help="count MACs, params and activations of a model, per module")
    p.add_argument("model", nargs="?", metavar="MODEL_SPEC",
                   help="built-in name (see --list) or module:function returning (model, example_input)")
    p.add_argument("--list", action="store_true", help="list the built-in model names and exit")
    p.add_argument("--max-depth", type=int, default=2, help="module depth shown in the table (default 2)")
    p.add_argument("--convention", default="macs", choices=("macs", "fvcore"),
                   help="macs: multiply-accumulates only (default); fvcore: also norms/pooling as fvcore counts")
    p.add_argument("--fake", action="store_true", help="count under FakeTensorMode (nothing is computed)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    built_in = p.add_argument_group("built-in models only")
    built_in.add_argument("--batch", type=int, default=None, help="images per example input (default 1)")
    built_in.add_argument("--resolution", type=int, default=None, help="input resolution (default the model's)")
    built_in.add_argument("--scale", metavar="STRATEGY:S", default=None,
                          help="scale the model's flops by S with a strategy first, e.g. dWr:4 (d, w, r, dw, dr, "
                               "wr, dwr, dWr)")
    built_in.add_argument("--alpha", type=float, default=0.8, help="alpha of dWr scaling (default 0.8)")
    p.set_defaults(handler=run)


def load_spec(spec: str):
    """(model, args tuple, kwargs dict) from a `module:function` or `file.py:function` spec."""
    import importlib
    import importlib.util
    import os
    import sys
    from pathlib import Path

    import torch

    module_name, _, fn_name = spec.rpartition(":")
    if not module_name or not fn_name:
        raise ValueError(f"model spec {spec!r}: expected a built-in name or module:function")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"model spec {spec!r}: no file {module_name}")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:  # the user's file: report it on one line (--debug shows the traceback)
            raise ValueError(f"model spec {spec!r}: loading {module_name} failed: {_one_line(e)}") from e
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"model spec {spec!r}: cannot import {module_name!r}: {e}") from e
        except Exception as e:
            raise ValueError(f"model spec {spec!r}: importing {module_name} failed: {_one_line(e)}") from e
        finally:
            sys.path.remove(os.getcwd())
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f"model spec {spec!r}: {module_name} has no function {fn_name!r}")
    try:
        result = fn()
    except Exception as e:
        raise ValueError(f"model spec {spec!r}: {fn_name}() failed: {_one_line(e)}") from e
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise TypeError(f"model spec {spec!r}: {fn_name}() must return (model, example_input), "
                        f"got {type(result).__name__}")
    model, example = result
    if isinstance(example, dict):
        return model, (), example
    if isinstance(example, (tuple, list)):
        return model, tuple(example), {}
    return model, (example,), {}


def _one_line(e: BaseException) -> str:
    """`Type: first line of the message` (torch's messages run over several lines)."""
    text = str(e).strip().splitlines()
    first, name = (text[0] if text else ""), type(e).__name__
    return first if first.startswith(name) else f"{name}: {first}".rstrip(": ")


def available_memory() -> int:
    """Bytes of memory available now: MemAvailable, capped by a cgroup v2 limit (containers)."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            limits += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            cap = f.read().strip()
        if cap != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append(max(0, int(cap) - int(f.read().strip())))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else FALLBACK_LIMIT


def check_size(cfg, batch: int, fake: bool, what: str) -> None:
    """Refuse a built-in model whose blocks or memory (see the module docstring) are out of bounds,
    before it is built. `what` names the request in the message (model, resolution, batch, scale)."""
    blocks = sum(cfg.depths)
    if blocks > MAX_BLOCKS:
        count = blocks if blocks < 10**12 else f"about 10^{len(str(blocks)) - 1}"  # no float(): it may overflow
        raise ValueError(f"{what}: {count} blocks, more than profile builds (at most {MAX_BLOCKS})")
    cx = cfg.complexity()  # closed form, linear in the number of blocks
    parts = {"parameters": cx.params, "input": batch * cfg.in_channels * cfg.resolution ** 2}
    if not fake:
        parts["activations"] = batch * cx.acts
    need, limit = 4 * sum(parts.values()), available_memory()
    if need > limit:
        detail = ", ".join(f"{k} {4 * v / 2**30:.3g}" for k, v in parts.items())
        raise ValueError(f"{what}: needs about {need / 2**30:.3g} GiB ({detail}), more than the "
                         f"{limit / 2**30:.3g} GiB of memory available"
                         + ("; --fake skips the activations" if "activations" in parts
                            and need - 4 * parts["activations"] <= limit else ""))


def build_builtin(args):
    from frugalnn import models
    from frugalnn.scaling import achieved, scale

    overrides = {} if args.resolution is None else {"resolution": args.resolution}
    cfg = models.config(args.model, **overrides)
    batch = 1 if args.batch is None else args.batch
    if batch < 1:
        raise ValueError(f"--batch: expected >= 1, got {batch}")
    what = f"{args.model} at resolution {cfg.resolution}, batch {batch}"
    note = ""
    if args.scale:
        strategy, _, factor = args.scale.partition(":")
        try:
            s = float(factor)
        except ValueError:
            raise ValueError(f"--scale: expected STRATEGY:S such as dWr:4, got {args.scale!r}") from None
        try:
            scaled = scale(cfg, s, strategy, alpha=args.alpha)
        except OverflowError:  # a factor near float's limit: some stage's depth or width became inf
            raise ValueError(f"--scale: {args.scale!r} scales {args.model} past any representable size") from None
        what = f"{args.model} scaled by {strategy} x{s:g} (resolution {scaled.resolution}), batch {batch}"
        check_size(scaled, batch, args.fake, what)
        got = achieved(cfg, scaled)
        note = (f"{args.model} scaled by {strategy} x{s:g}: depths {list(scaled.depths)}, widths "
                f"{list(scaled.widths)}, resolution {scaled.resolution}; achieved flops x{got['flops']:.3f}, "
                f"params x{got['params']:.3f}, acts x{got['acts']:.3f}")
        cfg = scaled
    else:
        check_size(cfg, batch, args.fake, what)
    return cfg.build().eval(), (cfg.example_input(batch),), {}, note


def run(args) -> int:
    import json

    from frugalnn import models
    from frugalnn.cost import Profiler

    if args.list:
        print("\n".join(models.names()))
        return 0
    if not args.model:
        raise ValueError("MODEL_SPEC is required (a built-in name, see --list, or module:function)")
    if args.max_depth < 0:
        raise ValueError(f"--max-depth: expected >= 0, got {args.max_depth}")
    if args.model not in models.names() and ":" in args.model:
        if args.batch is not None or args.resolution is not None or args.scale:
            raise ValueError("--batch, --resolution and --scale apply to built-in models only")
        model, inputs, kwargs = load_spec(args.model)
        note = ""
    else:
        model, inputs, kwargs, note = build_builtin(args)
    try:
        prof = Profiler(convention=args.convention, fake=args.fake)(model, *inputs, **kwargs)
    except (RuntimeError, MemoryError, ValueError, TypeError, IndexError, AssertionError) as e:
        # A model that does not take its example input (a spec whose model and input do not match)
        # or that runs out of memory: one line naming the spec, the traceback under --debug.
        raise ValueError(f"model {args.model!r} fails on its example input: {_one_line(e)}") from e
    if args.json:
        doc = prof.to_dict(max_depth=args.max_depth)
        if note:
            doc["scaled"] = note
        print(json.dumps(doc, indent=2, default=str))
    else:
        if note:
            print(note)
        print(prof.table(max_depth=args.max_depth))
    return 0
