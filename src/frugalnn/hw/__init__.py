"""Analytical accelerator models: processing elements, arrays of them, buffer and DRAM, one 45 nm
energy table, and the cost (latency, utilisation, energy breakdown) of a run.

Nothing here knows a workload. A technique's mapping (FuseMax's attention mappings in
`frugalnn.fusemax.accelerator`) counts operations and traffic and asks `Machine.cost` for the rest:

    from frugalnn.hw import ENERGY_45NM, Buffer, ComputeArray, DRAM, Machine, alu_pe
    pe = alu_pe(ENERGY_45NM, exp_macs=6)
    m = Machine((ComputeArray("2d", (256, 256), pe),), Buffer(16 << 20, 2, 8.9, 10.8), DRAM(400 * 2**30, 64.0), 940e6)
    m.cost(compute_cycles=c, busy={"2d": c}, dram_bytes=b, charges=[(pe, {"mac": n})], buffer_words=(r, w))

GEMM accelerators (MixPE and its baselines): PE kinds at 28 nm in quant_pes.py, workloads from model
configs in workloads.py, the output-stationary mapping and `evaluate(design, gemms)` in gemm.py.
"""
from frugalnn.hw.compute import PE, ComputeArray, OpCost, alu_pe, op_energy
from frugalnn.hw.cost import Cost, Machine
from frugalnn.hw.energy import ENERGY_45NM, energy_table
from frugalnn.hw.gemm import Design, evaluate, iso_area
from frugalnn.hw.memory import DRAM, Buffer
from frugalnn.hw.quant_pes import PEType, pe_types
from frugalnn.hw.workloads import Gemm, workload

__all__ = ["DRAM", "ENERGY_45NM", "PE", "Buffer", "ComputeArray", "Cost", "Design", "Gemm", "Machine", "OpCost",
           "PEType", "alu_pe", "energy_table", "evaluate", "iso_area", "op_energy", "pe_types", "workload"]
