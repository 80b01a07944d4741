"""Compute: processing elements (what each operation costs one PE) and arrays of them.

A `PE` is a datapath kind: for every operation it supports, the cycles one PE spends on it, the
energy it draws, and the register-file steps it takes (each step reads two operands and writes
one). An operation the PE lacks in hardware is priced as its software sequence, e.g. exp as
`exp_macs` MACs + 1 add on a PE without an exp unit. A `ComputeArray` is `shape` PEs of one kind
working in lockstep; it turns operation counts into cycles.

    pe = alu_pe(ENERGY_45NM, exp_macs=6)                 # fp16 MAC/add/max/div PE, exp in software
    grid = ComputeArray("2d", (256, 256), pe)
    grid.cycles({"mac": 1}, points=64 * 12 * 1024 * 1024)  # one MAC per point, spread over 65536 PEs
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class OpCost:
    cycles: int        # PE cycles per operation (pipelined: the issue interval)
    pj: float          # energy per operation
    steps: int = 1     # register-file steps (2 reads + 1 write each)

    def __post_init__(self):
        if self.cycles < 1 or self.steps < 1 or self.pj < 0:
            raise ValueError(f"OpCost: expected cycles >= 1, steps >= 1, pj >= 0, got {self}")


@dataclass(frozen=True)
class PE:
    name: str
    ops: Mapping[str, OpCost]
    rf_pj_per_step: float = 0.0  # 2 register reads + 1 write

    def op(self, name: str) -> OpCost:
        try:
            return self.ops[name]
        except KeyError:
            raise ValueError(f"op: PE {self.name!r} has no {name!r} (it has {sorted(self.ops)})") from None


def alu_pe(table: Mapping[str, float], exp_macs: int | None = None, name: str | None = None) -> PE:
    """A floating-point PE with a MAC, multiplier, adder, comparator and divider from `table` (pJ per
    action, e.g. ENERGY_45NM), one operation per cycle. exp: an exp unit (one cycle, `exp_unit` pJ) when
    `exp_macs` is None, else computed as `exp_macs` MACs + 1 add (that many cycles and steps)."""
    ops = {op: OpCost(1, table[op]) for op in ("mac", "mul", "add", "max", "div")}
    if exp_macs is None:
        ops["exp"] = OpCost(1, table["exp_unit"])
    else:
        if exp_macs < 1:
            raise ValueError(f"exp_macs: expected >= 1, got {exp_macs}")
        ops["exp"] = OpCost(exp_macs + 1, exp_macs * table["mac"] + table["add"], exp_macs + 1)
    label = name or ("ALU + exp unit" if exp_macs is None else f"ALU, exp = {exp_macs} MACs + add")
    return PE(label, ops, 2 * table["rf_read"] + table["rf_write"])


@dataclass(frozen=True)
class ComputeArray:
    name: str
    shape: tuple[int, ...]
    pe: PE

    def __post_init__(self):
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"{self.name}: expected a shape of positive PE counts, got {self.shape}")

    @property
    def pes(self) -> int:
        return math.prod(self.shape)

    def cycles(self, ops_per_point: Mapping[str, float], points: float) -> float:
        """Cycles for `points` iterations of a loop body of `ops_per_point`, spread evenly over the array."""
        return sum(k * self.pe.op(op).cycles for op, k in ops_per_point.items()) * points / self.pes


def op_energy(charges: Iterable[tuple[PE, Mapping[str, float]]]) -> dict[str, float]:
    """{"compute", "register file"} pJ of operation counts, each charged at the PE kind that ran it.
    Counts for the same kind are summed first, so one op type costs one multiplication per kind."""
    merged: list[tuple[PE, dict[str, float]]] = []
    for pe, counts in charges:
        into = next((c for p, c in merged if p == pe), None)
        if into is None:
            into = {}
            merged.append((pe, into))
        for op, n in counts.items():
            into[op] = into.get(op, 0.0) + n
    out = {"compute": 0.0, "register file": 0.0}
    for pe, counts in merged:
        for op, n in counts.items():
            cost = pe.op(op)
            out["compute"] += n * cost.pj
            out["register file"] += n * cost.steps * pe.rf_pj_per_step
    return out
