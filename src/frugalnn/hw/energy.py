"""Energy per action at 45 nm (pJ): the one table every analytical accelerator model reads.

Compute and register file: the Accelergy/Aladdin estimates that the FuseMax artifact
(FPSG-UIUC/micro24-fusemax-artifact, workspace/.../outputs-1d-*/ERT*.yaml) uses: fp multiply
8.825 + fp add 8.3395 per MAC, divide 36.25, exponential unit 94.65, comparator 0.028, register file
0.65 read / 0.57 write, MAC leakage 0.18 per cycle. Buffer: the artifact's Timeloop ERT for its
16-bit x 256 wide SRAM rows (2286.5 pJ read, 2759.4 pJ write per 4096-bit row), per 16-bit word.
DRAM: 512 pJ per 64-bit access (same ERT) = 64 pJ per byte.

A model for another datapath (integer MACs, shift-and-add PEs) adds its own entries to a copy of
this table rather than editing it: the FuseMax figures are computed from these exact values.
"""
from __future__ import annotations

from types import MappingProxyType

ENERGY_45NM = MappingProxyType({
    "mac": 17.1645, "mul": 8.825, "add": 8.3395, "max": 0.028036, "div": 36.251153, "exp_unit": 94.6475,
    "rf_read": 0.653431, "rf_write": 0.56957, "buffer_read_word": 2286.521343 / 256,
    "buffer_write_word": 2759.44498 / 256, "dram_byte": 512.0 / 8, "leak_pe_cycle": 0.180192,
})


def energy_table(**overrides: float) -> dict[str, float]:
    """A mutable copy of ENERGY_45NM with `overrides` (pJ per action) added or replaced."""
    table = dict(ENERGY_45NM)
    for name, pj in overrides.items():
        if not isinstance(pj, (int, float)) or pj < 0:
            raise ValueError(f"{name}: expected energy >= 0 pJ, got {pj!r}")
        table[name] = float(pj)
    return table
