"""What this machine is and what frugalnn will run on it (`frugalnn info`; recorded in every result file)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from functools import lru_cache

import frugalnn

_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "asimd")
_PACKAGES = ("numpy", "torch", "ml_dtypes", "gguf", "safetensors", "matplotlib", "rich", "transformers",
             "llama_cpp_python")


@lru_cache(maxsize=1)
def cpu() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "machine": platform.machine(), "logical_cores": os.cpu_count(),
            "features": [f for f in _FLAGS if f in flags]}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(threads: int | None = None) -> dict:
    """Machine, kernel backend, threads and versions, as recorded in results and benchmark JSON."""
    from frugalnn import _core, kernels

    data = {
        "frugalnn": frugalnn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu(),
        "kernel_backend": kernels.backend(),
        "available_backends": list(kernels.available_backends()),
        "avx512_vnni": bool(_core.cpu_supports_avx512_vnni()),
        "op_backends": kernels.op_backends(),
        "hardware_threads": _core.hardware_threads(),
        "threads": threads if threads is not None else _core.hardware_threads(),
        "versions": {p: package_version(p.replace("_", "-")) or package_version(p) for p in _PACKAGES},
    }
    if "torch" in sys.modules:
        data["torch_threads"] = sys.modules["torch"].get_num_threads()
    return data


def kernel_isa(op: str | None = None) -> str:
    """The ISA our compiled kernels run at right now: 'serial' (portable C++), 'avx2' (AVX2+FMA+F16C) or
    'avx512' (AVX512F/BW/VL; ops without AVX-512 kernels then run AVX2, see kernels.op_backends).
    With `op` (a csrc/<op> name): the ISA that op's kernels really run, e.g. 'avx2' for dfp under avx512."""
    from frugalnn import kernels

    return kernels.backend() if op is None else kernels.op_backends()[op]


def torch_isa() -> str:
    """The CPU capability torch's kernels dispatch to here (e.g. 'AVX2', 'AVX512'), or 'not installed'."""
    try:
        import torch
    except ImportError:
        return "not installed"
    return torch.backends.cpu.get_cpu_capability()


def machine_line(threads: int | None = None) -> str:
    """One line for a figure's provenance, computed here and now: CPU model, cores, our kernels' ISA."""
    c = cpu()
    t = "" if threads is None else f", {threads} thread{'s' if threads != 1 else ''}"
    return f"{c['model']} ({c['logical_cores']} logical cores){t}, frugalnn kernels: {kernel_isa()}"


def render(data: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"frugalnn {data['frugalnn']}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    c = data["cpu"]
    t.add_row("CPU", f"{c['model']} ({c['machine']}, {c['logical_cores']} logical cores)")
    t.add_row("CPU features", " ".join(c["features"]) or "-")
    t.add_row("kernel backend", f"{data['kernel_backend']} (available: {', '.join(data['available_backends'])}; "
                                "FRUGALNN_KERNELS=serial|avx2|avx512 overrides)")
    if "avx512" in data["available_backends"]:
        t.add_row("AVX-512 VNNI", "yes" if data.get("avx512_vnni") else "no")
    ops = data.get("op_backends", {})
    if ops:
        t.add_row("backend per op", ", ".join(f"{op}: {be}" for op, be in sorted(ops.items())))
    t.add_row("threads", f"{data['threads']} by default (hardware: {data['hardware_threads']})")
    t.add_row("python", f"{data['python']} on {data['platform']}")
    for name, version in data["versions"].items():
        t.add_row(name, version or "[dim]not installed[/dim]")
    Console().print(t)
