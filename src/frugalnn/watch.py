"""When a shortcut torch cannot see may stand in for torch modules: a structure watch and an interception check.

Two shortcuts bypass torch's dispatch for speed: `frugalnn.tmac.LUTLinear` calls its one-token
kernel directly, and the Llama's compiled decoder (frugalnn.llm.fast) runs a whole decode step in
one C++ call over the modules' buffers. Each is valid only while
  (a) the modules are as they were when the shortcut was planned: `Watched` modules bump a shared
      `StructureWatch` counter whenever their structure may have changed (a submodule, parameter,
      buffer or attribute assigned, as convert_/route_ do; a forward hook registered; `.to()` and
      friends), so the check is one integer comparison per call, not a walk over the model;
  (b) nothing intercepts torch calls that would miss the shortcut: `torch_overrides_active()`.

A Watched module without a watch attached (any model but one that attaches it) pays one dict
lookup per attribute assignment, nothing per call.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as _module


class StructureWatch:
    """A counter that `Watched` modules bump whenever their structure may have changed."""

    __slots__ = ("version",)

    def __init__(self):
        self.version = 0


class Watched(nn.Module):
    """Mixin: reports changes to the StructureWatch in `_watch`, if one is attached (see `attach`).

    Bumping on every assignment is deliberately blunt: assignments are rare outside __init__.
    Subclasses that cache something derived from their state extend `_changed`.
    """

    def _changed(self) -> None:
        watch = self.__dict__.get("_watch")
        if watch is not None:
            watch.version += 1

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self._changed()

    def _apply(self, fn, recurse: bool = True):
        # .to() / .float() / .share_memory() rebind parameters and buffers without __setattr__
        out = super()._apply(fn, recurse)
        self._changed()
        return out

    def register_forward_hook(self, *args, **kwargs):
        handle = super().register_forward_hook(*args, **kwargs)
        self._changed()
        return handle

    def register_forward_pre_hook(self, *args, **kwargs):
        handle = super().register_forward_pre_hook(*args, **kwargs)
        self._changed()
        return handle


def attach(root: nn.Module, watch: StructureWatch) -> None:
    """Make every Watched module under `root` (itself included) report to `watch`.

    Written into the instance dict, not assigned: attaching must not itself count as a change."""
    for m in root.modules():
        if isinstance(m, Watched) and m.__dict__.get("_watch") is not watch:
            m.__dict__["_watch"] = watch


def torch_overrides_active() -> bool:
    """True when something intercepts torch calls and would miss a step a shortcut runs: a
    torch.compile trace, a torch function or dispatch mode (FlopCounterMode, a routing mode),
    global module hooks."""
    # is_compiling first: under dynamo it is a constant, so the C-level reads after it are never traced
    return bool(torch.compiler.is_compiling() or torch._C._len_torch_function_stack()
                or torch._C._len_torch_dispatch_stack()
                or _module._global_forward_hooks or _module._global_forward_pre_hooks)
