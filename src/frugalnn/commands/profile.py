"""`frugalnn profile MODEL_SPEC`: MACs / params / activations table of a model.

MODEL_SPEC is a built-in model name (`frugalnn profile --list`) or `module:function` /
`path/to/file.py:function`, where the function takes no arguments and returns
(model, example_input); example_input is a tensor, a tuple of positional inputs or a dict of
keyword inputs.
"""
from __future__ import annotations


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
        loader_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"model spec {spec!r}: cannot import {module_name!r}: {e}") from e
        finally:
            sys.path.remove(os.getcwd())
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f"model spec {spec!r}: {module_name} has no function {fn_name!r}")
    result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise TypeError(f"model spec {spec!r}: {fn_name}() must return (model, example_input), "
                        f"got {type(result).__name__}")
    model, example = result
    if isinstance(example, dict):
        return model, (), example
    if isinstance(example, (tuple, list)):
        return model, tuple(example), {}
    return model, (example,), {}


def build_builtin(args):
    from frugalnn import models
    from frugalnn.scaling import achieved, scale

    overrides = {} if args.resolution is None else {"resolution": args.resolution}
    cfg = models.config(args.model, **overrides)
    note = ""
    if args.scale:
        strategy, _, factor = args.scale.partition(":")
        try:
            s = float(factor)
        except ValueError:
            raise ValueError(f"--scale: expected STRATEGY:S such as dWr:4, got {args.scale!r}") from None
        scaled = scale(cfg, s, strategy, alpha=args.alpha)
        got = achieved(cfg, scaled)
        note = (f"{args.model} scaled by {strategy} x{s:g}: depths {list(scaled.depths)}, widths "
                f"{list(scaled.widths)}, resolution {scaled.resolution}; achieved flops x{got['flops']:.3f}, "
                f"params x{got['params']:.3f}, acts x{got['acts']:.3f}")
        cfg = scaled
    batch = 1 if args.batch is None else args.batch
    if batch < 1:
        raise ValueError(f"--batch: expected >= 1, got {batch}")
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
    prof = Profiler(convention=args.convention, fake=args.fake)(model, *inputs, **kwargs)
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
