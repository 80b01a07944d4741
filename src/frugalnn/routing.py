"""Reroute torch functions (F.scaled_dot_product_attention, torch.matmul, ...) inside chosen modules.

Techniques that replace attention arithmetic (L-Mul, the FuseMax fused kernel) must reach models
that call `F.scaled_dot_product_attention` or `torch.matmul` directly rather than through a module
we could swap. `RoutedModule` wraps a module so that, during its forward only, the listed torch
functions are replaced by ours (via a TorchFunctionMode, so functional calls are caught too);
`route_` does the wrapping for every module a predicate selects, and `print(model)` shows it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from frugalnn.convert import FilterFn, swap_modules

SDPA = F.scaled_dot_product_attention


class FunctionRoute(TorchFunctionMode):
    """While active, calls to each key of `routes` run the mapped replacement instead."""

    def __init__(self, routes: dict[Callable, Callable]):
        super().__init__()
        self.routes = routes

    def __torch_function__(self, func, types, args=(), kwargs=None):
        impl = self.routes.get(func)
        if impl is not None:
            return impl(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


class RoutedModule(torch.nn.Module):
    """`inner` with some torch functions rerouted during its forward (label shows in print(model))."""

    def __init__(self, inner: torch.nn.Module, routes: dict[Callable, Callable], label: str):
        super().__init__()
        self.inner = inner
        self.routes = routes
        self.label = label

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with FunctionRoute(self.routes):
            return self.inner(*args, **kwargs)

    def extra_repr(self) -> str:
        names = ", ".join(getattr(f, "__name__", str(f)) for f in self.routes)
        return f"routes {names} -> {self.label}"


def looks_like_attention(module: torch.nn.Module, fqn: str) -> bool:
    """Default selector: modules whose class name says they are attention (LlamaAttention, BertSelfAttention, ...)."""
    name = type(module).__name__.lower()
    return "attention" in name


def route_(model: torch.nn.Module, routes: dict[Callable, Callable], label: str,
           filter_fn: FilterFn | None = None) -> int:
    """Wrap every module selected by `filter_fn` (default: attention modules) in a RoutedModule.

    Returns how many were wrapped; raises ValueError when none was, since a silent no-op would
    leave the model running the original arithmetic while the user believes it converted.
    """
    for fqn, m in model.named_modules():
        if isinstance(m, RoutedModule):
            raise ValueError(f"model: {fqn or 'the model'} is already routed to {m.label}; convert a fresh copy")
    select = filter_fn or looks_like_attention
    wrapped = swap_modules(model, select, lambda m, fqn: RoutedModule(m, routes, label))
    if wrapped == 0:
        hint = "" if filter_fn else " (no module's class name contains 'Attention'; pass filter_fn to choose)"
        raise ValueError(f"model: no module selected for {label}{hint}")
    return wrapped
