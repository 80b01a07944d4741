"""FuseMax's accelerator and three attention mappings on it, built from `frugalnn.hw`.

The machine (`Arch`): the paper's 2D array of PEs (256x256), 1D array (256 PEs), on-chip buffer
(16 MiB), DRAM bandwidth (400 GiB/s), clock (940 MHz), 16-bit words, and `frugalnn.hw.ENERGY_45NM`.
The 2D PEs and FuseMax's 1D PEs have no exp unit: exp is `exp_macs` MACs plus one add (6 + 1 in
the paper); FLAT's and the unfused baseline's 1D array has one exp/divide unit per PE, one op per
cycle (`Arch.machine(softmax_exp_units=True)`).

Operation counts are not typed in: each mapping takes its cascade from `frugalnn.fusemax.cascade.library`,
and every statement's iteration space and operator mix (`statement_ops`) give its work. Mappings:

- Unfused: QK on the 2D array, written to DRAM; softmax (3 passes, 4 ops per element) on the 1D
  array reading QK from and writing A to DRAM; AV on the 2D array. Einsums run one after another.
- FLAT (Kao et al., ASPLOS'23): QK and AV on the 2D array, softmax on the 1D array, fused at the
  granularity of rows: the M-long QK/A fibers of a block of queries live in the buffer and the
  three arrays overlap, so latency = max(2D, 1D, DRAM). When 256 fibers do not fit in the buffer
  the excess spills: QK written once and read by each of the three softmax passes.
- FuseMax: the 1-pass cascade with M0 = 256 (one 2D-array width) and the paper's binding: BQK,
  LM, SLN, SLD, SLNV on the 2D array; RM, PRM, SPD, RD, SPNV, RNV, AV on the 1D array, software
  pipelined in four stages per tile: max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) +
  max(SLNV, SPNV). K and V are re-read once per block of P1*256 queries whose Q, RM, RD, RNV fit
  in the buffer.

Latency and energy (ops, register file, buffer, DRAM, leakage) are `frugalnn.hw.Machine.cost`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from frugalnn.fusemax.cascade.check import parse
from frugalnn.fusemax.cascade.library import ATTENTION_1PASS, ATTENTION_3PASS
from frugalnn.fusemax.cascade.parser import Const, Op, Ref, Statement
from frugalnn.hw import DRAM, ENERGY_45NM, Buffer, ComputeArray, Cost, Machine, alu_pe

GiB = 2**30
MiB = 2**20


@dataclass(frozen=True)
class Arch:
    """The paper's machine as parameters; `machine()` builds it from frugalnn.hw parts."""
    pe_2d: tuple[int, int] = (256, 256)
    pe_1d: int = 256
    buffer_bytes: int = 16 * MiB
    dram_bytes_per_s: float = 400 * GiB
    clock_hz: float = 940e6
    word_bytes: int = 2
    exp_macs: int = 6
    energy: dict = field(default_factory=lambda: dict(ENERGY_45NM))

    def __post_init__(self):
        for name in ("pe_1d", "buffer_bytes", "word_bytes", "exp_macs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if min(self.pe_2d) < 1 or self.dram_bytes_per_s <= 0 or self.clock_hz <= 0:
            raise ValueError("pe_2d, dram_bytes_per_s and clock_hz must be positive")

    @property
    def pes_2d(self) -> int:
        return self.pe_2d[0] * self.pe_2d[1]

    def machine(self, softmax_exp_units: bool = False) -> Machine:
        """The 2D + 1D arrays, buffer and DRAM. softmax_exp_units: the 1D PEs carry an exp unit (FLAT's,
        the unfused baseline's); otherwise they, like the 2D PEs, compute exp as exp_macs MACs + add."""
        no_exp_unit = alu_pe(self.energy, exp_macs=self.exp_macs)
        pe_1d = alu_pe(self.energy) if softmax_exp_units else no_exp_unit
        return Machine((ComputeArray("2d", self.pe_2d, no_exp_unit), ComputeArray("1d", (self.pe_1d,), pe_1d)),
                       Buffer(self.buffer_bytes, self.word_bytes, self.energy["buffer_read_word"],
                              self.energy["buffer_write_word"]),
                       DRAM(self.dram_bytes_per_s, self.energy["dram_byte"]), self.clock_hz,
                       self.energy["leak_pe_cycle"])


@dataclass(frozen=True)
class Workload:
    name: str
    heads: int
    e: int          # query/key head dim
    f: int          # value head dim
    d_model: int
    d_ffn: int
    batch: int = 64


# The paper's workloads (its Table 3; shapes as in the artifact's flat_validation.csv).
WORKLOADS = {
    "BERT": Workload("BERT", 12, 64, 64, 768, 3072),
    "TrXL": Workload("TrXL", 16, 64, 64, 1024, 4096),
    "T5": Workload("T5", 8, 64, 64, 512, 2048),
    "XLM": Workload("XLM", 16, 128, 128, 2048, 8192),
}
SEQ_LENS = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)


def statement_ops(s: Statement) -> dict[str, int]:
    """Operations per point of a statement's iteration space (a product summed is one MAC; exp
    of a difference is one exp, the subtraction folded into its range reduction)."""
    ops: dict[str, int] = {}

    def add(op, n=1):
        ops[op] = ops.get(op, 0) + n

    def walk(e):
        if isinstance(e, (Ref, Const)):
            return
        if e.op == "exp":
            add("exp")
            arg = e.args[0]
            for a in (arg.args if isinstance(arg, Op) and arg.op in "+-" else (arg,)):
                walk(a)
            return
        add({"+": "add", "-": "add", "neg": "add", "*": "mul", "/": "div", "max": "max", "min": "max"}[e.op])
        for a in e.args:
            walk(a)

    reduced = s.ranks - s.out_ranks
    if reduced and (s.reducer or "sum") == "sum" and isinstance(s.expr, Op) and s.expr.op == "*":
        add("mac")
        for a in s.expr.args:
            walk(a)
        return ops
    walk(s.expr)
    if reduced:
        add("add" if (s.reducer or "sum") == "sum" else "max")
    return ops


def _points(s: Statement, ext: dict[str, int]) -> int:
    return math.prod(ext[r] for r in s.ranks)


@dataclass(kw_only=True)
class MappingCost(Cost):
    """A `frugalnn.hw.Cost` labelled with its mapping, workload and length."""
    mapping: str
    workload: str
    seq: int

    @property
    def util_2d(self) -> float:
        return self.utilization["2d"]

    @property
    def util_1d(self) -> float:
        return self.utilization["1d"]


class _Work:
    """Per-statement points, operation counts and cycles of one cascade on one workload and machine."""

    def __init__(self, text: str, w: Workload, seq: int, machine: Machine, tile: int | None = None):
        self.cascade = parse(text)
        self.bh = w.batch * w.heads
        self.ext = {"e": w.e, "f": w.f, "m": seq, "p": seq}
        if tile:
            self.ext.update(m0=tile, m1=max(1, seq // tile))
        self.machine = machine
        self.by_name = {s.out.tensor: s for s in self.cascade.statements if not s.is_init}

    def points(self, name: str) -> float:
        return self.bh * _points(self.by_name[name], self.ext)

    def ops(self, name: str) -> dict[str, float]:
        n = self.points(name)
        return {op: k * n for op, k in statement_ops(self.by_name[name]).items()}

    def cycles(self, name: str, array: str) -> float:
        return self.machine.array(array).cycles(statement_ops(self.by_name[name]), self.points(name))

    def charges(self, names, array: str) -> list:
        """(PE kind, op counts) of statements bound to `array`, for the energy account."""
        pe = self.machine.array(array).pe
        return [(pe, self.ops(n)) for n in names]


def _labelled(cost: Cost, mapping: str, w: Workload, seq: int) -> MappingCost:
    return MappingCost(**vars(cost), mapping=mapping, workload=w.name, seq=seq)


def _io_bytes(w: Workload, seq: int, arch: Arch) -> dict[str, float]:
    bh, wb = w.batch * w.heads, arch.word_bytes
    return {"Q": bh * seq * w.e * wb, "K": bh * seq * w.e * wb, "V": bh * seq * w.f * wb, "AV": bh * seq * w.f * wb}


FUSEMAX_2D = ("BQK", "LM", "SLN", "SLD", "SLNV")
FUSEMAX_1D = ("RM", "PRM", "SPD", "RD", "SPNV", "RNV", "AV")
SOFTMAX_3PASS = ("GM", "SN", "SD", "A")


def fusemax(w: Workload, seq: int, arch: Arch = Arch()) -> MappingCost:
    tile = arch.pe_2d[1]
    machine = arch.machine()
    work = _Work(ATTENTION_1PASS, w, seq, machine, tile=tile)
    c2 = {n: work.cycles(n, "2d") for n in FUSEMAX_2D}
    c1 = {n: work.cycles(n, "1d") for n in FUSEMAX_1D}
    stages = {"QK+LM | RD+RNV+AV": max(c2["BQK"] + c2["LM"], c1["RD"] + c1["RNV"] + c1["AV"]),
              "RM": c1["RM"],
              "SLN+SLD | PRM+SPD": max(c2["SLN"] + c2["SLD"], c1["PRM"] + c1["SPD"]),
              "SLNV | SPNV": max(c2["SLNV"], c1["SPNV"])}
    cycles = sum(stages.values())
    # Queries per on-chip block: their Q, RM, RD and RNV must fit beside a K and a V tile.
    wb = arch.word_bytes
    free = arch.buffer_bytes - 2 * tile * (w.e + w.f) * wb
    per_block = (w.e + 2 + w.f) * wb * arch.pe_2d[0]
    blocks_total = max(1, seq // arch.pe_2d[0])
    p1 = max(1, min(free // per_block, blocks_total))
    while blocks_total % p1:
        p1 -= 1
    rereads = blocks_total // p1
    io = _io_bytes(w, seq, arch)
    dram = io["Q"] + io["AV"] + rereads * (io["K"] + io["V"])
    words = dram / wb
    state_words = work.points("RNV") + 2 * work.points("RD")  # running state read + written per tile
    cost = machine.cost(cycles, {"2d": sum(c2.values()), "1d": sum(c1.values())}, dram,
                        work.charges(FUSEMAX_2D, "2d") + work.charges(FUSEMAX_1D, "1d"),
                        (words + state_words, words + state_words), stages)
    return _labelled(cost, "FuseMax", w, seq)


def _softmax_spill(w: Workload, seq: int, arch: Arch, buffer_bytes: int) -> float:
    """Fraction of a 256-query block's M-long fibers (QK and A, 16-bit) that do not fit on chip."""
    need = arch.pe_2d[0] * seq * arch.word_bytes
    return max(0.0, 1.0 - buffer_bytes / need)


def flat(w: Workload, seq: int, arch: Arch = Arch(), buffer_bytes: int | None = None) -> MappingCost:
    buffer_bytes = arch.buffer_bytes if buffer_bytes is None else buffer_bytes
    machine = arch.machine(softmax_exp_units=True)
    work = _Work(ATTENTION_3PASS, w, seq, machine)
    c2 = {n: work.cycles(n, "2d") for n in ("QK", "AV")}
    c1 = {n: work.cycles(n, "1d") for n in SOFTMAX_3PASS}
    cycles = max(sum(c2.values()), sum(c1.values()))
    wb = arch.word_bytes
    io = _io_bytes(w, seq, arch)
    # Row-granularity fusion: R queries keep their M-long fibers on chip, so K and V are read P/R times.
    rows = max(arch.pe_2d[0], min(seq, int(buffer_bytes // (seq * wb)) // arch.pe_2d[0] * arch.pe_2d[0]))
    spill = _softmax_spill(w, seq, arch, buffer_bytes)
    elements = work.points("SN")  # B*H*M*P scores
    dram = io["Q"] + io["AV"] + math.ceil(seq / rows) * (io["K"] + io["V"]) + spill * elements * wb * 4
    on_chip = (1 - spill) * elements
    buffer = (dram / wb + 5 * on_chip, dram / wb + 3 * on_chip)  # QK, SN, A: 3 writes; 5 reads
    cost = machine.cost(cycles, {"2d": sum(c2.values()), "1d": sum(c1.values())}, dram,
                        work.charges(c2, "2d") + work.charges(c1, "1d"), buffer,
                        {"2D (QK, AV)": sum(c2.values()), "1D softmax": sum(c1.values())})
    return _labelled(cost, "FLAT", w, seq)


def unfused(w: Workload, seq: int, arch: Arch = Arch()) -> MappingCost:
    machine = arch.machine(softmax_exp_units=True)
    work = _Work(ATTENTION_3PASS, w, seq, machine)
    io = _io_bytes(w, seq, arch)
    wb, bw, clk = arch.word_bytes, arch.dram_bytes_per_s, arch.clock_hz
    elements = work.points("SN")  # B*H*M*P scores
    qk_c, av_c = work.cycles("QK", "2d"), work.cycles("AV", "2d")
    sm_c = sum(work.cycles(n, "1d") for n in SOFTMAX_3PASS)
    spill = _softmax_spill(w, seq, arch, arch.buffer_bytes)
    qk_b = io["Q"] + io["K"] + elements * wb
    sm_b = 2 * elements * wb + spill * elements * wb * 2
    av_b = elements * wb + io["V"] + io["AV"]
    parts = {"QK": max(qk_c, qk_b / bw * clk), "softmax": max(sm_c, sm_b / bw * clk), "AV": max(av_c, av_b / bw * clk)}
    cycles = sum(parts.values())
    dram = qk_b + sm_b + av_b
    charges = work.charges(("QK",), "2d") + work.charges(SOFTMAX_3PASS, "1d") + work.charges(("AV",), "2d")
    cost = machine.cost(cycles, {"2d": qk_c + av_c, "1d": sm_c}, dram, charges, (dram / wb, dram / wb), parts)
    return _labelled(cost, "Unfused", w, seq)


def linear_layers(w: Workload, seq: int, arch: Arch = Arch()) -> MappingCost:
    """The rest of one encoder layer (QKV and output projections, FFN) at full 2D utilisation."""
    machine = arch.machine()
    macs = w.batch * seq * (4 * w.d_model**2 + 2 * w.d_model * w.d_ffn)
    cycles = macs / arch.pes_2d
    wb = arch.word_bytes
    dram = (4 * w.d_model**2 + 2 * w.d_model * w.d_ffn) * wb + w.batch * seq * (6 * w.d_model + 2 * w.d_ffn) * wb
    words = dram / wb
    cost = machine.cost(cycles, {"2d": cycles, "1d": 0.0}, dram, [(machine.array("2d").pe, {"mac": macs})],
                        (words, words), {})
    return _labelled(cost, "linear", w, seq)


MAPPINGS = {"Unfused": unfused, "FLAT": flat, "FuseMax": fusemax}


def evaluate(workloads=None, seq_lens=SEQ_LENS, arch: Arch = Arch(), flat_buffer: int | None = None):
    """Every mapping on every workload and length: {(mapping, workload, seq): MappingCost}, plus linear."""
    out = {}
    for name in workloads or WORKLOADS:
        w = WORKLOADS[name] if isinstance(name, str) else name
        for seq in seq_lens:
            out[("Unfused", w.name, seq)] = unfused(w, seq, arch)
            out[("FLAT", w.name, seq)] = flat(w, seq, arch, flat_buffer)
            out[("FuseMax", w.name, seq)] = fusemax(w, seq, arch)
            out[("linear", w.name, seq)] = linear_layers(w, seq, arch)
    return out


FLAT_UTIL_ALL = "FLAT 2D utilization, all points"
FLAT_UTIL_SUBSET = "FLAT 2D utilization (E=64, up to 64K)"


def summary(results: dict) -> dict[str, float]:
    """The paper's headline ratios: arithmetic means over all (workload, length) points; FLAT's
    utilisation also over the E=64, <= 64K subset (where it is 0.125 by construction)."""
    keys = sorted({(w, s) for (_, w, s) in results})

    def mean(f):
        vals = [f(w, s) for w, s in keys]
        return sum(vals) / len(vals)

    r = lambda m, w, s: results[(m, w, s)]  # noqa: E731
    return {
        "speedup vs FLAT": mean(lambda w, s: r("FLAT", w, s).latency_s / r("FuseMax", w, s).latency_s),
        "speedup vs Unfused": mean(lambda w, s: r("Unfused", w, s).latency_s / r("FuseMax", w, s).latency_s),
        "energy vs FLAT": mean(lambda w, s: r("FuseMax", w, s).energy_pj / r("FLAT", w, s).energy_pj),
        "energy vs Unfused": mean(lambda w, s: r("FuseMax", w, s).energy_pj / r("Unfused", w, s).energy_pj),
        "end-to-end speedup vs FLAT": mean(lambda w, s: (r("FLAT", w, s).latency_s + r("linear", w, s).latency_s)
                                           / (r("FuseMax", w, s).latency_s + r("linear", w, s).latency_s)),
        "end-to-end energy vs FLAT": mean(lambda w, s: (r("FuseMax", w, s).energy_pj + r("linear", w, s).energy_pj)
                                          / (r("FLAT", w, s).energy_pj + r("linear", w, s).energy_pj)),
        FLAT_UTIL_ALL: _mean([r("FLAT", w, s).util_2d for w, s in keys]),
        FLAT_UTIL_SUBSET: _mean([r("FLAT", w, s).util_2d for w, s in keys
                                 if s <= 1 << 16 and WORKLOADS.get(w, None) is not None and WORKLOADS[w].e == 64]),
        "FuseMax 2D utilization at 1K": _mean([r("FuseMax", w, s).util_2d for w, s in keys if s == keys[0][1]]),
        "FuseMax 2D utilization at 1M": _mean([r("FuseMax", w, s).util_2d for w, s in keys if s == keys[-1][1]]),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# The paper's headline numbers (Nayak et al., MICRO'24, abstract and Sec. 6) for comparison. FLAT's
# utilisation, "about 0.125", comes without the points it summarises: both our means are held to it.
PAPER = {"speedup vs FLAT": 6.7, "speedup vs Unfused": 10.0, "energy vs FLAT": 0.79,
         "end-to-end speedup vs FLAT": 5.3, "end-to-end energy vs FLAT": 0.83,
         FLAT_UTIL_ALL: 0.125, FLAT_UTIL_SUBSET: 0.125, "FuseMax 2D utilization at 1K": 0.89,
         "FuseMax 2D utilization at 1M": 0.99}

__all__ = ["Arch", "ENERGY_45NM", "FLAT_UTIL_ALL", "FLAT_UTIL_SUBSET", "MAPPINGS", "PAPER", "SEQ_LENS", "WORKLOADS",
           "MappingCost", "Workload", "evaluate", "flat", "fusemax", "linear_layers", "replace", "statement_ops",
           "summary", "unfused"]
