"""A machine (compute arrays, buffer, DRAM, clock, leakage) and the cost of one run on it.

A mapping -- how a workload is laid onto the machine -- works out its compute cycles, how long each
array is busy, its operation counts per array and its buffer and DRAM traffic; `Machine.cost` does
the rest the same way for every mapping:

    latency  = max(compute cycles / clock, DRAM bytes / bandwidth)
    energy   = ops x pJ per op (+ register-file steps) + buffer words x pJ per word
               + DRAM bytes x pJ per byte + leakage per PE-cycle x all PEs x latency cycles
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from frugalnn.hw.compute import PE, ComputeArray, op_energy
from frugalnn.hw.memory import DRAM, Buffer


@dataclass
class Cost:
    latency_s: float
    compute_cycles: float
    utilization: dict[str, float]  # per array: busy cycles / latency cycles
    dram_bytes: float
    energy_pj: float
    energy_breakdown: dict[str, float] = field(default_factory=dict)  # compute, register file, buffer, DRAM, leakage
    stages: dict = field(default_factory=dict)  # the mapping's own cycle breakdown
    memory_bound: bool = False  # DRAM time exceeds compute time


@dataclass(frozen=True)
class Machine:
    arrays: tuple[ComputeArray, ...]
    buffer: Buffer
    dram: DRAM
    clock_hz: float
    leak_pj_per_pe_cycle: float = 0.0

    def __post_init__(self):
        if self.clock_hz <= 0:
            raise ValueError(f"clock_hz: expected > 0, got {self.clock_hz}")
        names = [a.name for a in self.arrays]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"arrays: expected at least one array, uniquely named, got {names}")

    def array(self, name: str) -> ComputeArray:
        for a in self.arrays:
            if a.name == name:
                return a
        raise ValueError(f"array: expected one of {[a.name for a in self.arrays]}, got {name!r}")

    @property
    def pes(self) -> int:
        return sum(a.pes for a in self.arrays)

    def cost(self, compute_cycles: float, busy: Mapping[str, float], dram_bytes: float,
             charges: Iterable[tuple[PE, Mapping[str, float]]], buffer_words: tuple[float, float],
             stages: dict | None = None) -> Cost:
        """The cost of one run. busy: cycles each named array computes; charges: (PE kind, op counts)
        pairs; buffer_words: (words read, words written)."""
        for name in busy:
            self.array(name)
        mem_s = self.dram.seconds(dram_bytes)
        latency = max(compute_cycles / self.clock_hz, mem_s)
        total_cycles = latency * self.clock_hz
        energy = op_energy(charges)
        energy["buffer"] = self.buffer.energy(*buffer_words)
        energy["DRAM"] = self.dram.energy(dram_bytes)
        energy["leakage"] = total_cycles * self.pes * self.leak_pj_per_pe_cycle
        return Cost(latency, compute_cycles, {name: b / total_cycles for name, b in busy.items()}, dram_bytes,
                    sum(energy.values()), energy, dict(stages or {}), mem_s * self.clock_hz > compute_cycles)
