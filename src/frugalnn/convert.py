"""`convert_(model, config, filter_fn=None)`: swap a model's modules for frugalnn's, in place.

Each technique defines a config dataclass and registers a handler for it here:

    @register_handler(LUTConfig)
    def _convert_lut(model, config, filter_fn): ...   # returns the (mutated) model

so `convert_` is a registry lookup, not an if/else chain. Handlers usually call `swap_modules`.
`filter_fn(module, fqn) -> bool` narrows which modules are converted.
"""
from __future__ import annotations

from typing import Any, Callable

FilterFn = Callable[[Any, str], bool]
Handler = Callable[[Any, Any, "FilterFn | None"], Any]
_HANDLERS: dict[type, Handler] = {}


def register_handler(config_type: type) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        _HANDLERS[config_type] = fn
        return fn
    return wrap


def convert_(model, config, filter_fn: FilterFn | None = None):
    """Convert `model` in place according to `config`; returns the same model object."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    handler = _HANDLERS.get(type(config))
    if handler is None:
        known = ", ".join(sorted(t.__name__ for t in _HANDLERS)) or "none registered yet"
        raise TypeError(f"config: no converter for {type(config).__name__} (known: {known})")
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn: expected a callable (module, fqn) -> bool, got {type(filter_fn).__name__}")
    return handler(model, config, filter_fn)


def swap_modules(model, predicate: FilterFn, factory: Callable[[Any, str], Any], prefix: str = "") -> int:
    """Replace every submodule m (at dotted name fqn) with predicate(m, fqn) true by factory(m, fqn).

    A replaced module's children are not visited, so a replacement is never converted again.
    Returns the number of modules swapped.
    """
    swapped = 0
    for name, child in list(model.named_children()):
        fqn = f"{prefix}.{name}" if prefix else name
        if predicate(child, fqn):
            setattr(model, name, factory(child, fqn))
            swapped += 1
        else:
            swapped += swap_modules(child, predicate, factory, fqn)
    return swapped
