"""Who raced on which instructions: the ISA record every race's JSON carries, and its target verdict.

A race on an AVX-512 machine means something only with both sides' ISA beside it (issue 17): ours
(the backend chosen, the backend each raced op really runs, whether the avx512 kernels use VNNI,
the backends timed beside it in the same run) and the peer's (what llama.cpp's ggml build reports:
ggml_cpu_has_avx512, _vnni, ...; torch's CPU capability).
"""
from __future__ import annotations

PEER_FLAGS = ("avx2", "avx512", "avx512_vnni", "avx512_bf16", "avx512_vbmi", "avx_vnni")


def ours(ops: tuple[str, ...] = ()) -> dict:
    """Our kernels' ISA now: backend, the ISA each of `ops` (csrc/<op> names) runs, VNNI, same-run backends."""
    from frugalnn import info, kernels

    return {"backend": kernels.backend(), "available_backends": list(kernels.available_backends()),
            "also_timed_backends": list(kernels.other_backends()),
            "ops": {op: info.kernel_isa(op) for op in ops},
            "avx512_vnni": kernels.avx512_vnni(), "cpu": info.cpu()["model"],
            "cpu_features": info.cpu()["features"]}


def ggml_isa(features: dict) -> dict:
    """The flags that decide an x86 race, from GGML.features() (ggml_cpu_has_*), e.g. {'avx512': True, ...}."""
    return {f: bool(features[f]) for f in PEER_FLAGS if f in features}


def describe_ours(ops: tuple[str, ...] = ()) -> str:
    """'avx512 (lut: avx512, VNNI on)': one line for a note."""
    rec = ours(ops)
    per_op = ", ".join(f"{op}: {isa}" for op, isa in rec["ops"].items())
    vnni = "VNNI on" if rec["avx512_vnni"] else "VNNI off"
    return f"{rec['backend']} ({', '.join(filter(None, (per_op, vnni)))})"


def verdict(ratio: float | None, target: float) -> str:
    """'meets >= 2x' / 'misses >= 2x' (a verdict that can fail), or 'not measured (target >= 2x)'."""
    if ratio is None:
        return f"not measured (target >= {target:g}x)"
    return f"{'meets' if ratio >= target else 'misses'} >= {target:g}x"
