"""Thin wrappers over the compiled core, plus the numpy reference of every kernel.

The backend (serial reference, AVX2 or AVX-512) is picked at import from the CPU's features (the
best one it has); the environment variable FRUGALNN_KERNELS=serial|avx2|avx512|auto overrides it,
and `use_backend` switches it for a block of code (tests run every kernel under each available one).
Under avx512 an op without AVX-512 kernels runs its AVX2 ones (`op_backends` says which).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from frugalnn import _core

BACKENDS = ("serial", "avx2", "avx512")
# Why a backend is not available here (the test fixture's skip reason; tests/skip_policy.py allows "CPU").
MISSING_REASON = {"avx2": "CPU lacks AVX2/FMA/F16C/BMI2", "avx512": "CPU lacks AVX-512 (AVX512F/BW/VL/DQ)"}


def available_backends() -> tuple[str, ...]:
    have = {"serial": True, "avx2": _core.cpu_supports_avx2(), "avx512": _core.cpu_supports_avx512()}
    return tuple(b for b in BACKENDS if have[b])


def op_backends() -> dict[str, str]:
    """Per compiled op, the backend its kernels run under the active backend (avx512 -> avx2 fallback)."""
    return dict(_core.op_backends())


def integer_isa(op: str) -> str:
    """What an integer-GEMM op (mixpe: vpdpbusd, dfp: vpdpwssd) runs now: its backend, plus ' + VNNI'
    when that is avx512 with VNNI on (else its AVX512BW path: vpmaddubsw / vpmaddwd on zmm)."""
    isa = op_backends()[op]
    return isa + " + VNNI" if isa == "avx512" and avx512_vnni() else isa


def backend() -> str:
    return _core.backend()


def other_backends() -> tuple[str, ...]:
    """The vectorised backends available here besides the active one: benches time them in the same run,
    so the gain of a backend (avx512 over avx2) is visible beside the race."""
    return tuple(b for b in available_backends() if b not in ("serial", backend()))


def set_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name not in available_backends():
        raise ValueError(f"backend {name!r} is not available on this CPU: {MISSING_REASON[name]} "
                         f"(available: {available_backends()})")
    _core.set_backend(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    previous = backend()
    set_backend(name)
    try:
        yield
    finally:
        _core.set_backend(previous)


def avx512_vnni() -> bool:
    """Whether the avx512 kernels use VNNI (vpdpbusd, vpdpwssd) now: a VNNI CPU, not switched off."""
    return bool(_core.avx512_vnni())


@contextlib.contextmanager
def use_avx512_vnni(on: bool) -> Iterator[None]:
    """Let the avx512 kernels use VNNI (only where the CPU has it) or force their AVX512BW path (what
    an AVX-512 CPU without VNNI runs) for a block of code; FRUGALNN_VNNI=0 does it for a process."""
    previous = avx512_vnni()
    _core.set_avx512_vnni(bool(on))
    try:
        yield
    finally:
        _core.set_avx512_vnni(previous)


def _apply_environment() -> None:
    if os.environ.get("FRUGALNN_VNNI", "").strip() == "0":
        _core.set_avx512_vnni(False)
    choice = os.environ.get("FRUGALNN_KERNELS", "auto").strip().lower() or "auto"
    if choice == "auto":
        return
    if choice not in BACKENDS:
        raise ValueError(f"FRUGALNN_KERNELS: expected 'serial', 'avx2', 'avx512' or 'auto', got {choice!r}")
    set_backend(choice)


_apply_environment()
