"""A GEMM mapping on an output-stationary PE array, and `evaluate`: cycles, energy and utilization
of a workload (a list of frugalnn.hw.workloads.Gemm) on one design (a PEType on an R x C array).

Mapping: output tiles of R activation rows x C output columns; each PE accumulates its output over
K at `rate` products per cycle; a tile costs ceil(K / rate) cycles plus R + C cycles of fill and
drain. Traffic: the loop order with less DRAM traffic (weights once and activations re-read once per
weight-buffer panel, or the reverse); buffer words: per K step R activations and C weights enter the
array, outputs written once. Latency = max(compute, DRAM), through frugalnn.hw.Machine.cost, which
also prices energy (ops, buffer, DRAM, leakage).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from frugalnn.hw.compute import PE, ComputeArray, OpCost
from frugalnn.hw.cost import Cost, Machine
from frugalnn.hw.energy import ENERGY_45NM
from frugalnn.hw.memory import DRAM, Buffer
from frugalnn.hw.quant_pes import PEType
from frugalnn.hw.workloads import Gemm

CLOCK_HZ = 500e6                     # the paper's clock
DRAM_BYTES_PER_CYCLE = 1024 / 8      # the authors' 1024-bit memory interface (conf_*.ini if_width)
WBUF_BYTES, ABUF_BYTES = 128 << 10, 256 << 10   # the authors' Wgt_SRAM / Act_SRAM
# 28 nm SRAM, 16-byte word: ~0.04 pJ/bit read, 0.05 pJ/bit write for a 64-128 KiB bank (CACTI 7 class
# figures at 28 nm; the authors run CACTI on the same buffers). DRAM: the core table's 64 pJ/byte.
SRAM_READ_PJ_WORD, SRAM_WRITE_PJ_WORD, SRAM_WORD = 0.04 * 128, 0.05 * 128, 16
LEAK_FRACTION = 0.1  # leakage per PE-cycle as a fraction of the PE's dynamic energy per product (assumed)


@dataclass(frozen=True)
class Design:
    pe: PEType
    rows: int
    cols: int

    @property
    def area_mm2(self) -> float:
        return (self.rows * self.cols * self.pe.area_um2 + self.cols * self.pe.extra_area_um2_per_col) * 1e-6


def iso_area(pe: PEType, area_mm2: float) -> Design:
    """The squarest array of `pe` (multiples of 4) whose area is at most `area_mm2`."""
    per_pe = pe.area_um2 * 1e-6
    side = max(4, int(math.sqrt(area_mm2 / per_pe)) // 4 * 4)
    cols = side
    while (side * (cols + 4)) * per_pe <= area_mm2:
        cols += 4
    return Design(pe, side, cols)


def machine(d: Design) -> tuple[Machine, PE]:
    pe = PE(d.pe.name, {"mac": OpCost(1, d.pe.pj + d.pe.extra_pj_per_mac)})
    buf = Buffer(WBUF_BYTES + ABUF_BYTES, SRAM_WORD, SRAM_READ_PJ_WORD, SRAM_WRITE_PJ_WORD)
    dram = DRAM(DRAM_BYTES_PER_CYCLE * CLOCK_HZ, ENERGY_45NM["dram_byte"])
    m = Machine((ComputeArray("array", (d.rows, d.cols), pe),), buf, dram, CLOCK_HZ, LEAK_FRACTION * d.pe.pj)
    return m, pe


def gemm_counts(d: Design, g: Gemm) -> dict:
    """Cycles, DRAM bytes and buffer words of one GEMM (times its count) on design d."""
    tiles = math.ceil(g.m / d.rows) * math.ceil(g.n / d.cols)
    cycles = tiles * (math.ceil(g.k / d.pe.rate) + d.rows + d.cols) * g.count
    w_bytes = g.n * g.k * d.pe.w_bits / 8
    a_bytes = g.m * g.k * d.pe.a_bits / 8
    o_bytes = g.m * g.n * 2
    dram = min(w_bytes + a_bytes * math.ceil(w_bytes / WBUF_BYTES),
               a_bytes + w_bytes * math.ceil(a_bytes / ABUF_BYTES)) + o_bytes
    k_steps = tiles * g.k
    reads = k_steps * (d.rows * d.pe.a_bits + d.cols * d.pe.w_bits) / 8 / SRAM_WORD
    writes = (w_bytes + a_bytes + o_bytes) / SRAM_WORD
    return {"cycles": cycles, "dram": dram * g.count, "reads": reads * g.count, "writes": writes * g.count,
            "macs": g.macs}


def evaluate(d: Design, gemms: list[Gemm]) -> Cost:
    """Cycles, energy (pJ, with its breakdown) and utilization of `gemms` run one after another on d."""
    m, pe = machine(d)
    tot = {"cycles": 0.0, "dram": 0.0, "reads": 0.0, "writes": 0.0, "macs": 0.0}
    latency_cycles = 0.0
    for g in gemms:
        c = gemm_counts(d, g)
        for key in tot:
            tot[key] += c[key]
        latency_cycles += max(c["cycles"], c["dram"] / DRAM_BYTES_PER_CYCLE)  # per GEMM: no overlap across layers
    cost = m.cost(tot["cycles"], {"array": tot["macs"] / d.pe.rate / (d.rows * d.cols)}, tot["dram"],
                  [(pe, {"mac": tot["macs"]})], (tot["reads"], tot["writes"]),
                  stages={"macs": tot["macs"], "latency_cycles": latency_cycles})
    # per-GEMM max(compute, DRAM) summed, not the whole run's max: re-derive latency and leakage from it
    cost.latency_s = latency_cycles / CLOCK_HZ
    cost.energy_breakdown["leakage"] = latency_cycles * d.rows * d.cols * LEAK_FRACTION * d.pe.pj
    cost.energy_pj = sum(cost.energy_breakdown.values())
    cost.utilization = {"array": tot["macs"] / (latency_cycles * d.rows * d.cols * d.pe.rate)}
    return cost
