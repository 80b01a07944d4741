"""Thin wrappers over the compiled core, plus the numpy reference of every kernel.

The backend (serial reference or AVX2) is picked at import from the CPU's features; the
environment variable FRUGALNN_KERNELS=serial|avx2|auto overrides it, and `use_backend` switches
it for a block of code (tests run every kernel under both).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from frugalnn import _core

BACKENDS = ("serial", "avx2")


def available_backends() -> tuple[str, ...]:
    return BACKENDS if _core.cpu_supports_avx2() else ("serial",)


def backend() -> str:
    return _core.backend()


def set_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name not in available_backends():
        raise ValueError(f"backend {name!r} is not available on this CPU (available: {available_backends()})")
    _core.set_backend(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    previous = backend()
    set_backend(name)
    try:
        yield
    finally:
        _core.set_backend(previous)


def _apply_environment() -> None:
    choice = os.environ.get("FRUGALNN_KERNELS", "auto").strip().lower() or "auto"
    if choice == "auto":
        return
    if choice not in BACKENDS:
        raise ValueError(f"FRUGALNN_KERNELS: expected 'serial', 'avx2' or 'auto', got {choice!r}")
    set_backend(choice)


_apply_environment()
