"""Model-level quantization of our Llama (frugalnn.llm): round-to-nearest or GPTQ, one transformer block at a time.

    from frugalnn.tmac import quantize
    model = quantize("smollm2", bits=3, group_size=64, method="gptq")    # LUT layout g64, 3-bit asymmetric
    model = quantize("smollm2", bits=3, method="gptq")                   # Q3_K grid (what `frugalnn quantize` writes)
    model.quantization.layers      # per tensor: output error of RTN and GPTQ on the calibration inputs

GPTQ runs block by block (frugalnn.tmac.gptq for the per-layer algorithm): the calibration sequences go through
block i with hooks on its linear layers collecting H = 2 X X^T / N, in the order the block uses them (q/k/v, then
the attention output, gate/up, down: each sees the inputs its already-quantized predecessors produce), and block
i, now quantized, makes block i+1's inputs. Only one block's float32 weights exist at a time (read from the file
when it is reached), so the peak is about one block's weights + the largest Hessian + the calibration activations.

Calibration text: CPython's pydoc_data topics CALIB_TOPICS, disjoint from the perplexity text (frugalnn.llm.
perplexity: "execmodel" + "types"; the test checks no 48-character window of one appears in the other).

Types (`qtype`): "g{G}b{B}a" = the project's LUT layouts (group G, B bits, asymmetric; no GGUF type stores them),
or GGUF types (frugalnn.tmac.quantizers: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K). A K-quant needs
in_features % 256 == 0; a tensor that is not (SmolLM2's 576-wide layers) falls back as llama.cpp's quantizer
does it, to a 32-block type (FALLBACK).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from frugalnn.tmac import gptq as G
from frugalnn.tmac.grids import Family, family, gformat

# pydoc_data topics used for calibration: large topics sharing no text with the perplexity topics.
CALIB_TOPICS = ("specialnames", "compound", "formatstrings", "debugger", "typesmapping", "assignment", "comparisons",
                "import")
CALIB_SEQUENCES, CALIB_LENGTH = 32, 512  # 16,384 tokens
DEFAULT_KQUANT = {2: "Q2_K", 3: "Q3_K", 4: "Q4_K", 5: "Q5_K", 6: "Q6_K", 8: "Q8_0"}
# A tensor whose rows are not whole 256-blocks gets a 32-block type, as in llama.cpp's quantizer: the build in
# llama-cpp-python 0.3.36 logs "ncols 576 not divisible by 256 (required for type q3_K) -> falling back to q4_0"
# for SmolLM2's Q3_K; Q5_0 / Q5_1 / Q8_0 for Q4_K / Q5_K / Q6_K follow llama_tensor_get_type's table.
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
METHODS = ("rtn", "gptq")
# Tensors of one block in the order the block's forward pass uses them, grouped by the fused layer that runs them.
FUSED = (("wqkv", ("attn_q", "attn_k", "attn_v")), ("wo", ("attn_output",)), ("gate_up", ("ffn_gate", "ffn_up")),
         ("down", ("ffn_down",)))


def calibration_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in CALIB_TOPICS)


def calibration_tokens(tokenizer, sequences: int = CALIB_SEQUENCES, length: int = CALIB_LENGTH) -> torch.Tensor:
    """[sequences, length] token ids: consecutive slices of the calibration text."""
    ids = tokenizer(calibration_text(), add_special_tokens=False)["input_ids"]
    need = sequences * length
    if len(ids) < need:
        raise ValueError(f"calib: the calibration text has {len(ids)} tokens, {sequences} x {length} requested")
    return torch.tensor(ids[:need], dtype=torch.long).reshape(sequences, length)


def resolve_qtype(bits, group_size=None, qtype=None) -> str:
    """The grid family asked for: qtype as given, else g{group}b{bits}a with a group size, else the K-quant of bits."""
    if qtype is not None:
        return str(qtype)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= int(bits) <= 8:
        raise ValueError(f"bits: expected an integer in 2..8, got {bits!r}")
    bits = int(bits)
    if group_size is not None:
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 4 or group_size % 4:
            raise ValueError(f"group_size: expected a positive multiple of 4, got {group_size!r}")
        return f"g{group_size}b{bits}a"
    if bits not in DEFAULT_KQUANT:
        raise ValueError(f"bits: {bits} has no standard GGUF type; give group_size for a LUT layout (g{{G}}b{bits}a)")
    return DEFAULT_KQUANT[bits]


def tensor_family(qtype: str, k: int) -> Family:
    """The family one tensor of in_features k gets: qtype, or its fallback when k is not whole groups."""
    g = gformat(qtype)
    if g is not None:
        group, bits = g
        for cand in (group, 64, 32):  # largest that divides k, as frugalnn.llm.load picks its groups
            if cand <= group and k % cand == 0:
                return family(f"g{cand}b{bits}a")
        raise ValueError(f"in_features {k} is not a multiple of 32: no group of {qtype} fits")
    fam = family(qtype)
    if k % fam.width == 0:
        return fam
    if qtype in FALLBACK:
        return family(FALLBACK[qtype])
    raise ValueError(f"in_features {k} is not a whole number of {qtype} blocks of {fam.width}")


@dataclass
class LayerRecord:
    name: str
    shape: tuple[int, int]
    qtype: str
    error_rtn: float
    error_gptq: float | None
    seconds: float


@dataclass
class Quantization:
    """What `quantize` did: per tensor its type, grid and codes (for writing a GGUF) and the output errors."""
    qtype: str
    method: str
    calib_tokens: int
    layers: list[LayerRecord] = field(default_factory=list)
    tensors: dict = field(default_factory=dict)  # GGUF tensor name -> (Family, grid, codes)
    seconds: float = 0.0
    peak_rss_mib: float | None = None


def peak_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class _Capture(torch.nn.Module):
    """Stands in for a linear layer during one calibration pass: adds its inputs to the Hessian, then either runs
    the layer (the block continues) or stops the pass (nothing after this layer is needed yet)."""

    class Stop(Exception):
        pass

    def __init__(self, inner, hessian: G.Hessian, stop: bool):
        super().__init__()
        self.inner, self.hessian, self.stop = inner, hessian, stop

    def forward(self, x):
        self.hessian.add(x)
        if self.stop:
            raise _Capture.Stop
        return self.inner.forward(x)


def _slots(block):
    attn, mlp = block.attention, block.mlp
    return {"wqkv": (attn, "wqkv"), "wo": (attn, "wo"), "gate_up": (mlp, "gate_up"), "down": (mlp, "down")}


def _run(block, xs: list[torch.Tensor], rot: torch.Tensor) -> list[torch.Tensor]:
    out = []
    with torch.inference_mode():
        for x in xs:
            try:
                out.append(block(x, rot, -1, None))
            except _Capture.Stop:
                pass
    return out


def quantize_blocks(file, method: str, qtype: str, calib: torch.Tensor, *, act_order: bool = False,
                    percdamp: float = G.PERCDAMP, batch: int = 4, progress: bool = False,
                    on_block=None) -> Quantization:
    """Quantize every linear tensor of the Llama GGUF `file` (frugalnn.llm.GGUFModelFile); returns the
    Quantization (its tensors hold the grids and codes). on_block(i, block) sees each quantized block."""
    from frugalnn.llm.layers import Block, DenseLinear, LlamaAttention, RMSNorm, StoredEmbedding, SwiGLU, rope_table

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    t0 = time.perf_counter()
    c = file.config
    result = Quantization(qtype, method, int(calib.numel()))
    xs = []
    if method == "gptq":
        emb = StoredEmbedding(file.tensor("token_embd.weight"), c.vocab_size, c.dim)
        xs = [emb(calib[i:i + batch]) for i in range(0, calib.shape[0], batch)]
        rot = rope_table(c.rope_dim, calib.shape[1], c.rope_base, c.rope_linear_scale).unsqueeze(1)
    blocks = range(c.n_layers)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc=f"{method} {qtype}", unit="block")
    for i in blocks:
        p = f"blk.{i}."
        weights = {}
        for slot, names in FUSED:
            weights[slot] = [(p + n + ".weight", file.float(p + n + ".weight")) for n in names]
        dense = {slot: DenseLinear(torch.from_numpy(np.concatenate([w for _, w in parts])))
                 for slot, parts in weights.items()}
        norm = lambda name: RMSNorm(torch.from_numpy(file.float(name)), c.norm_eps)  # noqa: E731
        block = Block(norm(p + "attn_norm.weight"),
                      LlamaAttention(dense["wqkv"], dense["wo"], c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dim),
                      norm(p + "ffn_norm.weight"), SwiGLU(dense["gate_up"], dense["down"]))
        slots = _slots(block)
        for slot, parts in weights.items():
            k = parts[0][1].shape[1]
            h = None
            if method == "gptq":
                owner, attr = slots[slot]
                h = G.Hessian(k)
                setattr(owner, attr, _Capture(dense[slot], h, stop=True))
                _run(block, xs, rot)
                setattr(owner, attr, dense[slot])
                h = h.matrix
            deq, factor = [], {}
            for name, w in parts:
                fam = tensor_family(qtype, k)
                t1 = time.perf_counter()
                r = G.rtn(w, fam.fit, fam.width, fam.concat, fam.round_codes, fam.dequantize)
                e_rtn = G.output_error(w, r.weight, h) if h is not None else float("nan")
                e_gptq = None
                if method == "gptq":
                    q = G.gptq(w, h, fam.fit, fam.width, fam.concat, percdamp=percdamp, act_order=act_order,
                               cache=factor)
                    e_gptq = G.output_error(w, q.weight, h)
                    r = q
                result.layers.append(LayerRecord(name, tuple(w.shape), fam.qtype, e_rtn, e_gptq,
                                                 time.perf_counter() - t1))
                result.tensors[name] = (fam, r.grid, r.codes)
                deq.append(r.weight)
            dense[slot].weight.data = torch.from_numpy(np.concatenate(deq).astype(np.float32))
        if method == "gptq":
            xs = _run(block, xs, rot)  # block i with quantized weights makes block i+1's inputs
        if on_block is not None:
            on_block(i, block)
        del block, dense, weights
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mib = peak_rss_mib()
    return result


def _lut_linear(tensors: dict, names: list[str], threads):
    """One LUTLinear over the row-stacked tensors (each row keeps its own grid: exact)."""
    from frugalnn.tmac.nn import LUTLinear
    from frugalnn.tmac.weight import LUTWeight

    fams = {tensors[n][1].block for n in names}
    bits = {tensors[n][1].bits for n in names}
    if len(fams) != 1 or len(bits) != 1:
        return None  # mixed fallback types in one fused layer: the caller keeps it dense
    codes = np.concatenate([tensors[n][2] for n in names])
    scale = np.concatenate([np.asarray(tensors[n][1].scale, np.float32) for n in names])
    offset = np.concatenate([np.asarray(tensors[n][1].offset, np.float32) for n in names])
    w = LUTWeight.from_codes(codes, scale, offset, bits.pop(), fams.pop(), source="quantize")
    return LUTLinear(w, threads=threads)


def install(model, tensors: dict, dense: bool = False, threads: int | None = None):
    """Put quantized tensors (GGUF name -> (family, grid, codes), as Quantization.tensors) into an fp32 Llama."""
    from frugalnn.llm.layers import DenseLinear

    for i, layer in enumerate(model.layers):
        p = f"blk.{i}."
        slots = _slots(layer)
        for slot, names in FUSED:
            full = [p + n + ".weight" for n in names]
            owner, attr = slots[slot]
            lut = None if dense else _lut_linear(tensors, full, threads)
            if lut is None:
                w = np.concatenate([f.dequantize(g, c) for f, g, c in (tensors[n] for n in full)])
                setattr(owner, attr, DenseLinear(torch.from_numpy(w.astype(np.float32)), threads))
            else:
                setattr(owner, attr, lut)
    return model


def quantize(model_or_path="smollm2", bits=4, group_size: int | None = None, method: str = "rtn", calib=None,
             qtype: str | None = None, *, act_order: bool = False, percdamp: float = G.PERCDAMP,
             dense: bool = False, threads: int | None = None, progress: bool = False):
    """Quantize a Llama GGUF (a path or "smollm2") and return our Llama with the quantized weights.

    bits 2..8 with group_size -> the LUT layout g{group_size}b{bits}a (asymmetric); without -> the K-quant of
    `bits` (Q4_K, Q3_K, Q2_K, ...); qtype= names the type directly. method "rtn" or "gptq". calib: token ids
    [sequences, length] (default: CALIB_SEQUENCES x CALIB_LENGTH tokens of calibration_text()).
    The linear layers are LUTLinear (the codes and per-block scales, lossless) unless dense=True, which keeps
    the dequantized weights in float32 DenseLinear (the arithmetic of the fp32 reference: isolates the weights'
    error from the kernel's). Embedding and output head stay as the file stores them. The result carries
    `.quantization` (frugalnn.tmac.calibrated.Quantization).
    """
    from frugalnn import llm as llama
    from frugalnn.llm.gguf_file import GGUFModelFile

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    qtype = resolve_qtype(bits, group_size, qtype)
    if isinstance(model_or_path, torch.nn.Module):
        raise TypeError("model_or_path: pass the GGUF path the model was loaded from (model.source): quantization "
                        "reads each block's float weights from the file, one block at a time")
    path = llama.resolve_model_path(model_or_path)
    file = GGUFModelFile(path)
    if calib is None:  # RTN needs none: no tokenizer is loaded for it
        calib = calibration_tokens(llama.load_tokenizer(path)) if method == "gptq" else torch.zeros(1, 1)
    calib = torch.as_tensor(calib, dtype=torch.long)
    if calib.ndim != 2 or calib.numel() == 0:
        raise ValueError(f"calib: expected token ids [sequences, length], got shape {tuple(calib.shape)}")
    if int(calib.min()) < 0 or int(calib.max()) >= file.config.vocab_size:
        raise ValueError(f"calib: token ids must be in 0..{file.config.vocab_size - 1}, got {int(calib.min())}.."
                         f"{int(calib.max())}")
    tensor_family(qtype, file.config.dim)  # an unavailable type fails before any work
    q = quantize_blocks(file, method, qtype, calib, act_order=act_order, percdamp=percdamp, progress=progress)
    model = install(llama.load(path, bits="fp32", threads=threads), q.tensors, dense, threads)
    model.quantization = q
    return model
