"""`profile(model, *inputs, **kwargs)`: MACs, params and activations of any torch model, per module.

Counting happens on torch's dispatch (a TorchDispatchMode), not on per-module hooks, so every op
the model really executes is seen: functional calls, the matmuls inside attention, einsum after
torch lowers it, and custom ops (their FLOP formula is looked up in torch's
`flop_counter.flop_registry`, see frugalnn.cost.formulas). Module forward hooks only keep a stack
of which modules are running, to attribute each op to its module and all of its parents.

Conventions (the fvcore / pycls ones):
- `macs`: multiply-accumulates of conv, linear/mm/addmm, matmul/bmm/baddbmm, einsum, attention and
  any op with a registered formula; bias adds, pointwise ops, norms and pooling are free.
  `flops` = 2 x `macs` (torch's FlopCounterMode unit).
- `params`: parameter elements, shared parameters once.
- `acts`: output elements of the ops that carry MACs (conv and linear layers for a CNN: the
  definition of Dollar et al. and pycls). `acts_all`: elements of every tensor any non-view op writes.
- convention="fvcore" additionally counts what fvcore's defaults count: batch/layer/group norm,
  adaptive average pooling, upsampling and grid sampling (see formulas.FVCORE_EXTRAS).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map_only

from frugalnn.cost.formulas import FVCORE_EXTRAS, flop_formula, is_free, op_name

CONVENTIONS = ("macs", "fvcore")


@dataclass(frozen=True)
class ModuleCost:
    type: str
    macs: int | float
    params: int
    acts: int

    @property
    def flops(self) -> int | float:
        return 2 * self.macs


def _halve(flops: int) -> int | float:
    return flops // 2 if flops % 2 == 0 else flops / 2


class _ModuleStack:
    """Which of the model's modules are running now (global forward hooks, removed on exit)."""

    def __init__(self, model: torch.nn.Module):
        self.names: dict[int, str] = {}
        for name, module in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(module), name)
        self.stack: list[tuple[int, str]] = []
        self.current: frozenset[str] = frozenset({""})
        self._handles: list[Any] = []

    def _pre(self, module, args):
        name = self.names.get(id(module))
        if name is not None:
            self.stack.append((id(module), name))
            self.current = self.current | {name}

    def _post(self, module, args, output):
        key = id(module)
        if key not in self.names:
            return
        # Pop down to this module: a child that raised inside a try/except left its entry behind.
        while self.stack:
            if self.stack.pop()[0] == key:
                break
        self.current = frozenset({""} | {name for _, name in self.stack})

    def innermost(self) -> str:
        return self.stack[-1][1] if self.stack else ""

    def __enter__(self):
        from torch.nn.modules import module as nn_module

        self._handles = [nn_module.register_module_forward_pre_hook(self._pre),
                         nn_module.register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


class _Recorder:
    def __init__(self, modules: _ModuleStack):
        self.modules = modules
        self.flops: dict[str, Counter] = defaultdict(Counter)   # module -> op -> FLOPs (2 per MAC)
        self.acts: Counter = Counter()
        self.acts_all: Counter = Counter()
        self.unsupported: Counter = Counter()                  # op -> calls
        self.mac_ops = 0
        self._kinds: dict[Any, tuple] = {}                     # op -> (name, formula, free), per profile run

    def kind(self, func) -> tuple:
        k = self._kinds.get(func)
        if k is None:
            k = self._kinds[func] = (op_name(func), flop_formula(func), is_free(func))
        return k

    def op(self, func, args, kwargs, out) -> None:
        name, formula, free = self.kind(func)
        flops = 0
        if formula is not None:
            try:
                flops = int(formula(*args, **kwargs, out_val=out))
            except Exception as e:
                raise RuntimeError(f"the FLOP formula registered for {name} failed: {e}") from e
            self.mac_ops += 1
        elif not free:
            self.unsupported[name] += 1
        if isinstance(out, torch.Tensor):
            tensors = [out]
        else:
            tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        written = 0 if getattr(func, "is_view", False) else sum(t.numel() for t in tensors)
        primary = tensors[0].numel() if formula is not None and tensors else 0
        for module in self.modules.current:
            if formula is not None:
                self.flops[module][name] += flops
            self.acts[module] += primary
            self.acts_all[module] += written

    def extra(self, name: str, macs: int) -> None:
        for module in self.modules.current:
            self.flops[module][name] += 2 * macs


class _CountingMode(TorchDispatchMode):
    def __init__(self, recorder: _Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        _, formula, free = self.recorder.kind(func)
        if formula is None and not free:
            # A composite op reaching us (e.g. a custom op with a Python decomposition): count its parts.
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = func(*args, **kwargs)
        self.recorder.op(func, args, kwargs, out)
        return out


class _FvcoreExtrasMode(TorchFunctionMode):
    def __init__(self, recorder: _Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        extra = FVCORE_EXTRAS.get(func)
        if extra is not None:
            name, count = extra
            self.recorder.extra(name, int(count(args, kwargs, out)))
        return out


@dataclass
class Profile:
    """What one forward pass cost. Totals are attributes; breakdowns are methods (fvcore's shape)."""
    macs: int | float
    params: int
    acts: int
    acts_all: int
    mac_ops: int          # op calls that carry MACs: the layers executed (a shared layer counts per call)
    convention: str
    _modules: dict[str, str] = field(repr=False)              # name -> class name, definition order
    _params: dict[str, int] = field(repr=False)
    _flops: dict[str, Counter] = field(repr=False)
    _acts: Counter = field(repr=False)
    _unsupported: Counter = field(repr=False)

    @property
    def flops(self) -> int | float:
        """2 x macs: torch.utils.flop_counter's unit."""
        return 2 * self.macs

    def by_module(self) -> dict[str, ModuleCost]:
        """Cost of every module (dotted name; "" is the whole model), parents include their children."""
        return {name: ModuleCost(cls, _halve(sum(self._flops.get(name, Counter()).values())),
                                 self._params.get(name, 0), self._acts.get(name, 0))
                for name, cls in self._modules.items()}

    def by_operator(self, module: str = "") -> Counter:
        """MACs per op ('aten::convolution', 'mylib::lut_linear', ...) inside `module` ("" = all)."""
        if module not in self._modules:
            raise KeyError(f"module: no module named {module!r} in the profiled model")
        return Counter({op: _halve(f) for op, f in self._flops.get(module, Counter()).items()})

    def unsupported(self) -> Counter:
        """Ops seen but not counted (no FLOP formula and not free by convention): op -> number of calls."""
        return Counter(self._unsupported)

    def table(self, max_depth: int = 2) -> str:
        from frugalnn.cost.table import render_table

        if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 0:
            raise ValueError(f"max_depth: expected an int >= 0, got {max_depth!r}")
        return render_table(self, max_depth)

    def to_dict(self, max_depth: int | None = None) -> dict:
        modules = {name: {"type": c.type, "macs": c.macs, "params": c.params, "acts": c.acts}
                   for name, c in self.by_module().items()
                   if max_depth is None or _depth(name) <= max_depth}
        return {"convention": self.convention, "macs": self.macs, "flops": self.flops, "params": self.params,
                "acts": self.acts, "acts_all": self.acts_all, "mac_ops": self.mac_ops, "by_operator": dict(self.by_operator()),
                "unsupported": dict(self._unsupported), "modules": modules}


def _depth(name: str) -> int:
    return 0 if name == "" else name.count(".") + 1


def _param_counts(model: torch.nn.Module) -> tuple[int, dict[str, int]]:
    per_module: Counter = Counter()
    total = 0
    for name, p in model.named_parameters():  # shared parameters once
        total += p.numel()
        parts = name.split(".")[:-1]
        per_module[""] += p.numel()
        for i in range(1, len(parts) + 1):
            per_module[".".join(parts[:i])] += p.numel()
    return total, dict(per_module)


class Profiler:
    """Counting options; `Profiler(...)(model, *inputs, **kwargs)` profiles one forward pass.

    convention: "macs" (default; fvcore/pycls: only multiply-accumulates) or "fvcore" (adds
        fvcore's norm/pool/upsample counts, to compare with fvcore.nn.FlopCountAnalysis).
    fake: run under FakeTensorMode, so nothing is computed (fast for big models; fails on models
        whose control flow reads tensor values).
    grad: run with autograd enabled (default off: forward only, no graph kept).
    """

    def __init__(self, convention: str = "macs", fake: bool = False, grad: bool = False):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
        self.convention, self.fake, self.grad = convention, bool(fake), bool(grad)

    def __call__(self, model: torch.nn.Module, *inputs: Any, **kwargs: Any) -> Profile:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        modules = _ModuleStack(model)
        recorder = _Recorder(modules)
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.enable_grad() if self.grad else torch.no_grad())
                if self.fake:
                    from torch._subclasses.fake_tensor import FakeTensorMode

                    fake_mode = stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
                    inputs, kwargs = tree_map_only(torch.Tensor, fake_mode.from_tensor, (inputs, kwargs))
                stack.enter_context(modules)
                if self.convention == "fvcore":
                    stack.enter_context(_FvcoreExtrasMode(recorder))
                stack.enter_context(_CountingMode(recorder))
                model(*inputs, **kwargs)
        except Exception as e:
            raise _with_module_path(e, modules.innermost(), model) from e
        total_params, params = _param_counts(model)
        types = {name: type(m).__name__ for name, m in model.named_modules()}
        return Profile(macs=_halve(sum(recorder.flops[""].values())), params=total_params,
                       acts=recorder.acts[""], acts_all=recorder.acts_all[""], mac_ops=recorder.mac_ops,
                       convention=self.convention,
                       _modules=types, _params=params, _flops=dict(recorder.flops), _acts=recorder.acts,
                       _unsupported=recorder.unsupported)


def _with_module_path(error: Exception, path: str, model: torch.nn.Module) -> Exception:
    module = model.get_submodule(path) if path else model
    where = f"module {path!r} ({type(module).__name__})" if path else f"the model's forward ({type(model).__name__})"
    message = f"{type(error).__name__} in {where}: {error}"
    try:
        new = type(error)(message)
    except Exception:
        new = RuntimeError(message)
    new.module_path = path
    return new


def profile(model: torch.nn.Module, *inputs: Any, **kwargs: Any) -> Profile:
    """Profile one forward pass `model(*inputs, **kwargs)` with the default conventions (see module doc).

    For other options use `Profiler(convention="fvcore", fake=True)(model, *inputs, **kwargs)`.
    A model that raises has its error re-raised, same type where possible, naming the innermost
    module that was running (`error.module_path`), chained to the original.
    """
    return Profiler()(model, *inputs, **kwargs)
