"""The techniques frugalnn implements, and how their experiments and benchmarks are found.

Each technique is a package `frugalnn.<name>`; the same name is used by `frugalnn report --only
<name>`, `frugalnn bench <name>`, docs/<name>.md and tests/<name>/. A technique's package registers
its experiments in `experiment.py` and its benchmarks in `bench.py`; `discover("experiment")`
imports those modules. A technique counts as built when its package has an `experiment.py`.
"""
from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar


@dataclass(frozen=True)
class Technique:
    name: str     # the package and the name used everywhere
    number: int   # as numbered in the README and PAPERS.md (0: shared number formats, 10: the LLM application)
    title: str
    paper: str
    summary: str

    @property
    def status(self) -> str:
        """'built' when the package has an experiment module, 'planned' otherwise."""
        return "built" if has_module(f"frugalnn.{self.name}.experiment") else "planned"


TECHNIQUES = (
    Technique("formats", 0, "Number formats", "shared core", "fp16/bf16/fp8/fp6/fp4 via ml_dtypes, DFP, k-bit groups"),
    Technique("tmac", 1, "T-MAC", "Wei et al., EuroSys'25", "lookup-table GEMM for 1-4 bit weights on CPU"),
    Technique("lmul", 2, "L-Mul", "Luo & Sun 2024", "floating-point multiplication as one integer addition"),
    Technique("mixpe", 3, "MixPE", "Zhang et al. 2024", "per-group integer GEMM, dequantization after the group"),
    Technique("dfp", 4, "Dynamic fixed point training", "Das et al., ICLR'18", "INT16 training, INT32 accumulation"),
    Technique("odl", 5, "FP16 on-device training", "Nadalini et al. 2023", "batch-1 training primitives as matmuls"),
    Technique("delta", 6, "Delta Activation Layer", "Yousefzadeh & Sifalakis", "temporal sparsity, delta inference"),
    Technique("tdnn", 7, "EfficientTDNN", "Wang et al., TASLP'22", "elastic speaker-net supernet and search"),
    Technique("fusemax", 8, "FuseMax", "Nayak et al., MICRO'24", "attention as an einsum cascade, 1-pass fused kernel"),
    Technique("scaling", 9, "Fast model scaling", "Dollar et al., CVPR'21", "flops/params/acts and scaling strategies"),
    Technique("llm", 10, "Llama on GGUF", "application", "a real LLM on the T-MAC kernels, raced against llama.cpp"),
)
BY_NAME = {t.name: t for t in TECHNIQUES}


def technique_of(module: str) -> str:
    """The technique a module belongs to: 'frugalnn.tmac.experiment' -> 'tmac' ('' outside a technique)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "frugalnn" and parts[1] in BY_NAME else ""


T = TypeVar("T")


class Registry(Generic[T]):
    """Named items (experiments, benchmarks) registered by decorators in the technique packages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def add(self, name: str, item: T, origin: str) -> None:
        """Register `item`; the same name from another place is a mistake (a re-import is not)."""
        if name in self._items and self._origin[name] != origin:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._origin[name]}, {origin})")
        self._items[name] = item
        self._origin[name] = origin

    def items(self) -> dict[str, T]:
        return dict(self._items)


def has_module(name: str) -> bool:
    """Whether frugalnn.<technique>.<module> exists, looked up on disk: importing the technique's package
    to ask would run its __init__, and a broken one must be reported by discover(), not crash the caller."""
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "frugalnn":
        raise ValueError(f"name: expected 'frugalnn.<technique>.<module>', got {name!r}")
    return (Path(__file__).parent / parts[1] / f"{parts[2]}.py").is_file()


def discover(module: str) -> dict[str, str]:
    """Import `frugalnn.<technique>.<module>` for every technique that has one; returns the import
    errors by technique (a module that fails to import is reported, not a crash of the caller)."""
    errors: dict[str, str] = {}
    for t in TECHNIQUES:
        name = f"frugalnn.{t.name}.{module}"
        if not has_module(name):
            continue
        try:
            importlib.import_module(name)
        except Exception:
            errors[t.name] = traceback.format_exc()
    return errors
