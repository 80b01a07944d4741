"""Where a decode step's time goes, op by op, on our side and on llama.cpp's (for the rows we lose).

Our side: each linear of block 0 (fused qkv, o, fused gate_up, down) and the output head, called on one
token as the decoder calls it, median of `reps`, block ops times n_layers. llama.cpp's side: the same
matrices as ggml_mul_mat on one token (frugalnn.bench.ggml_peer, the peer's own libggml) in the file's type
per tensor, weights quantized by ggml itself (random values: the speed of a type does not depend on them).
"Other" is the whole step (timed by the bench) less the linears: attention, norms, RoPE, the embedding row.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

OPS = (("qkv", ("attn_q", "attn_k", "attn_v")), ("o", ("attn_output",)), ("gate_up", ("ffn_gate", "ffn_up")),
       ("down", ("ffn_down",)))


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up: the tuner's first call, pages in
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def ours(model, reps: int = 5) -> dict[str, float]:
    """{op: ms per decode step} of our linears (block ops x n_layers, the head once)."""
    import torch

    block = model.layers[0]
    mods = {"qkv": block.attention.wqkv, "o": block.attention.wo, "gate_up": block.mlp.gate_up,
            "down": block.mlp.down, "head": model.output}
    out = {}
    with torch.inference_mode():
        for op, m in mods.items():
            x = torch.randn(1, 1, m.in_features)
            ms = _median_ms(lambda m=m, x=x: m(x), reps)
            out[op] = ms * (1 if op == "head" else model.config.n_layers)
    return out


def peer(path: Path, threads: int, reps: int = 5) -> dict[str, float]:
    """{op: ms per decode step} of llama.cpp's ggml_mul_mat on one token, per tensor in the file's type."""
    from frugalnn.bench import ggml_peer
    from frugalnn.llm.gguf_file import GGUFModelFile

    f = GGUFModelFile(path)
    g = ggml_peer.load()
    head = "token_embd.weight" if f.tied_embeddings else "output.weight"
    plan = [(op, [f"blk.0.{n}.weight" for n in names]) for op, names in OPS] + [("head", [head])]
    out = {}
    for op, names in plan:
        total = 0.0
        for name in names:
            t = f.tensors[name]
            k, m = (int(s) for s in t.shape)
            mm = ggml_peer.MulMat(g, t.tensor_type.name, m, k, 1, threads)
            try:
                total += _median_ms(mm.run, reps)
            finally:
                mm.close()
        out[op] = total * (1 if op == "head" else f.config.n_layers)
    return out


def table(ours_ms: dict, peer_ms: dict | str, ours_step_ms: float, peer_step_ms: float | None) -> str:
    """A markdown table: per op, ours and llama.cpp ms per step and the ratio (llama.cpp / ours)."""
    rows = ["| op (ms per decode step) | ours | llama.cpp | llama.cpp / ours |", "|---|---|---|---|"]
    peer_ok = isinstance(peer_ms, dict)
    ours_other = ours_step_ms - sum(ours_ms.values())
    entries = list(ours_ms.items()) + [("other (attention, norms, RoPE, embedding)", ours_other)]
    peer_other = None if not peer_ok or peer_step_ms is None else peer_step_ms - sum(peer_ms.values())
    for op, ms in entries:
        p = (peer_ms.get(op) if op in ours_ms else peer_other) if peer_ok else None
        ratio = f"{p / ms:.2f}" if p is not None and ms > 0 else "-"
        rows.append(f"| {op} | {ms:.1f} | {'-' if p is None else f'{p:.1f}'} | {ratio} |")
    if not peer_ok:
        rows.append(f"\nllama.cpp per op: {peer_ms}")
    return "\n".join(rows)
