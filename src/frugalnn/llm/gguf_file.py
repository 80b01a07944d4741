"""Read a Llama-architecture GGUF file: hyperparameters from its metadata, tensors as stored.

frugalnn.llm.gguf_reader does the parsing (memory-mapped, values parsed on demand, so opening a 4 GB file
costs nothing until a tensor is touched; the gguf package's own reader costs ~250 MB on SmolLM2's vocabulary). Everything that can go wrong with a user's file (absent, truncated, not GGUF,
another architecture, missing tensors) becomes a one-line ValueError/FileNotFoundError naming it.

Layout note: llama.cpp's converter permutes the rows of attn_q/attn_k inside each head so that
llama.cpp's "normal" RoPE (rotating adjacent pairs 2i, 2i+1) reproduces the Hugging Face model,
which rotates halves. We keep the rows as stored and rotate adjacent pairs, so quantized tensors
can go straight into a kernel without being repacked; q.k is unchanged by a permutation applied
to both q and k, so logits agree with the Hugging Face layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.llm.gguf_reader import GGUFReader

# GGUF architectures whose tensors and hyperparameters follow the Llama layout exactly.
LLAMA_ARCHS = ("llama",)
# Tensors a Llama needs per block (norms, q/k/v/o, gate/up/down), for the block_count message.
TENSORS_PER_BLOCK = 9


@dataclass(frozen=True)
class LlamaConfig:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    norm_eps: float
    rope_base: float
    rope_dim: int
    rope_linear_scale: float  # positions are divided by this (GGUF rope.scaling.type == linear)
    context_length: int
    bos_id: int | None = None
    eos_id: int | None = None
    name: str = ""

    def __post_init__(self):
        for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size", "context_length"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k}: expected >= 1, got {getattr(self, k)}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) is not a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.rope_dim % 2 or not 0 < self.rope_dim <= self.head_dim:
            raise ValueError(f"rope_dim: expected an even number in (0, {self.head_dim}], got {self.rope_dim}")
        # Every float the model computes with: a NaN eps or a zero rope base would otherwise load and make
        # every logit NaN (generate printing nothing, perplexity printing nan) or fail after the prefill.
        for k in ("norm_eps", "rope_base", "rope_linear_scale"):
            v = float(getattr(self, k))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{k}: expected a finite number > 0, got {v}")

    @property
    def n_params(self) -> int:
        attn = self.dim * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        return self.n_layers * (attn + 3 * self.dim * self.ffn_dim + 2 * self.dim) + self.vocab_size * self.dim + self.dim


class GGUFModelFile:
    """An opened GGUF file: `.config`, `.tensor(name)` (gguf_reader.Tensor, as stored), `.float(name)` (fp32 numpy)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such GGUF file")
        if not self.path.is_file():
            raise ValueError(f"{self.path}: is not a file")
        try:
            self.reader = GGUFReader(self.path)
        except ValueError as e:  # names the file and what is wrong already
            raise ValueError(f"not a readable GGUF file: {e}") from None
        except OSError as e:
            raise ValueError(f"{self.path}: not a readable GGUF file ({type(e).__name__}: {e})") from None
        self.arch = self.meta("general.architecture", None)
        if self.arch not in LLAMA_ARCHS:
            raise ValueError(f"{self.path}: architecture {self.arch!r} is not supported (expected one of {LLAMA_ARCHS})")
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.config = self._config()
        self._check_tensors()

    def meta(self, key: str, default=...):
        if key not in self.reader.fields:
            if default is ...:
                raise ValueError(f"{self.path}: metadata key {key!r} is missing")
            return default
        return self.reader.value(key)  # a ValueError names the file and the key (e.g. invalid UTF-8)

    def meta_int(self, key: str, default=...) -> int | None:
        """An integer metadata value; a string, array, bool or float is an error naming the key."""
        v = self.meta(key, default)
        if v is None and default is None:
            return None
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{self.path}: metadata key {key!r}: expected an integer, got {_shown(v)}")
        return int(v)

    def meta_float(self, key: str, default=...) -> float:
        """A finite float metadata value (integers accepted); anything else is an error naming the key."""
        v = self.meta(key, default)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{self.path}: metadata key {key!r}: expected a number, got {_shown(v)}")
        return float(v)

    def _config(self) -> LlamaConfig:
        a = self.arch
        dim = self.meta_int(f"{a}.embedding_length")
        n_heads = self.meta_int(f"{a}.attention.head_count")
        n_kv = self.meta_int(f"{a}.attention.head_count_kv", n_heads)
        head_dim = self.meta_int(f"{a}.attention.key_length", dim // max(n_heads, 1))
        n_layers = self.meta_int(f"{a}.block_count")
        # block_count sizes the list of expected tensors: bound it by the tensors the file holds first, so that
        # 0xFFFFFFFF is an error here rather than billions of names built before the first check (a count that is
        # merely too high for the file is left to the per-tensor check, which names the first missing tensor).
        if n_layers > len(self.tensors):
            raise ValueError(f"{self.path}: metadata key '{a}.block_count' is {n_layers}, but the file holds only "
                             f"{len(self.tensors)} tensors ({TENSORS_PER_BLOCK} per block)")
        emb = self.tensors.get("token_embd.weight")
        vocab = self.meta(f"{a}.vocab_size", None)
        if vocab is None:
            vocab = int(emb.shape[1]) if emb is not None else self.reader.array_length("tokenizer.ggml.tokens")
            if vocab is None:
                raise ValueError(f"{self.path}: the vocabulary size is unknown (no {a}.vocab_size, token_embd.weight "
                                 "or tokenizer.ggml.tokens)")
        else:
            vocab = self.meta_int(f"{a}.vocab_size")
        scaling = self.meta(f"{a}.rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise ValueError(f"{self.path}: rope scaling {scaling!r} is not supported (none or linear)")
        factor = self.meta_float(f"{a}.rope.scaling.factor", 1.0) if scaling == "linear" else 1.0
        if "rope_freqs.weight" in self.tensors:
            raise ValueError(f"{self.path}: per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 style) "
                             "are not supported")
        bos = self.meta_int("tokenizer.ggml.bos_token_id", None)
        eos = self.meta_int("tokenizer.ggml.eos_token_id", None)
        values = dict(
            dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
            head_dim=head_dim, ffn_dim=self.meta_int(f"{a}.feed_forward_length"), vocab_size=int(vocab),
            norm_eps=self.meta_float(f"{a}.attention.layer_norm_rms_epsilon", 1e-5),
            rope_base=self.meta_float(f"{a}.rope.freq_base", 10000.0),
            rope_dim=self.meta_int(f"{a}.rope.dimension_count", head_dim),
            rope_linear_scale=factor,
            context_length=self.meta_int(f"{a}.context_length", 2048),
            bos_id=bos, eos_id=eos, name=str(self.meta("general.name", self.path.stem)))
        try:
            return LlamaConfig(**values)
        except ValueError as e:  # name the metadata key the bad value came from
            field = str(e).split(":", 1)[0]
            key = _CONFIG_KEYS.get(field)
            where = f"metadata key '{a}.{key}'" if key else "metadata"
            raise ValueError(f"{self.path}: {where}: {e}") from None

    def expected_shapes(self) -> dict[str, tuple[int, int] | tuple[int]]:
        """name -> (rows, cols) in torch order ([out, in]) for every tensor the model needs."""
        c = self.config
        q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
        shapes: dict = {"token_embd.weight": (c.vocab_size, c.dim), "output_norm.weight": (c.dim,)}
        for i in range(c.n_layers):
            b = f"blk.{i}."
            shapes.update({b + "attn_norm.weight": (c.dim,), b + "ffn_norm.weight": (c.dim,),
                           b + "attn_q.weight": (q, c.dim), b + "attn_k.weight": (kv, c.dim),
                           b + "attn_v.weight": (kv, c.dim), b + "attn_output.weight": (c.dim, q),
                           b + "ffn_gate.weight": (c.ffn_dim, c.dim), b + "ffn_up.weight": (c.ffn_dim, c.dim),
                           b + "ffn_down.weight": (c.dim, c.ffn_dim)})
        return shapes

    def _check_tensors(self) -> None:
        for name, shape in self.expected_shapes().items():
            t = self.tensors.get(name)
            if t is None:
                raise ValueError(f"{self.path}: tensor {name!r} is missing")
            got = tuple(int(s) for s in reversed(t.shape.tolist()))  # GGUF lists the fastest dimension first
            got = got[-len(shape):] if len(got) > len(shape) and all(s == 1 for s in got[:-len(shape)]) else got
            if got != shape:
                raise ValueError(f"{self.path}: tensor {name!r} has shape {got}, metadata implies {shape}")
        out = self.tensors.get("output.weight")
        if out is not None:
            got = tuple(int(s) for s in reversed(out.shape.tolist()))
            if got != (self.config.vocab_size, self.config.dim):
                raise ValueError(f"{self.path}: tensor 'output.weight' has shape {got}, "
                                 f"expected {(self.config.vocab_size, self.config.dim)}")

    @property
    def tied_embeddings(self) -> bool:
        return "output.weight" not in self.tensors

    def tensor(self, name: str):
        return self.tensors[name]

    def type_name(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def float(self, name: str) -> np.ndarray:
        """The tensor dequantized to float32, shaped [out, in] (or [n] for vectors)."""
        import gguf

        t = self.tensors[name]
        shape = tuple(int(s) for s in reversed(t.shape.tolist()))
        try:
            w = gguf.quants.dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise ValueError(f"{self.path}: tensor {name!r} has type {t.tensor_type.name}, "
                             "which the gguf package cannot dequantize") from None
        except Exception as e:  # a truncated file shows up here as a short memmap
            raise ValueError(f"{self.path}: tensor {name!r} cannot be read ({type(e).__name__}: {e})") from None
        w = np.asarray(w, dtype=np.float32)
        self._refuse_non_finite(name, w)  # a NaN/inf weight would make every logit NaN, silently
        if not w.flags.writeable:  # F32 tensors come back as views of the read-only memory map
            w = w.copy()
        if w.size != int(np.prod(shape)):
            raise ValueError(f"{self.path}: tensor {name!r} holds {w.size} values, expected {shape}")
        return w.reshape(shape)

    def check_finite(self, name: str, rows_per_chunk: int = 2048) -> None:
        """Raise, naming the tensor and element, if any value of tensor `name` is NaN/inf; dequantizes a chunk of
        rows at a time, so a tensor kept as stored is checked without a float32 copy of it."""
        import gguf

        t = self.tensors[name]
        data = t.data.reshape(1, -1) if t.data.ndim < 2 else t.data.reshape(-1, t.data.shape[-1])
        for start in range(0, data.shape[0], rows_per_chunk):
            with np.errstate(all="ignore"):
                w = np.asarray(gguf.quants.dequantize(np.asarray(data[start:start + rows_per_chunk]), t.tensor_type))
            per_row = w.size // max(1, min(rows_per_chunk, data.shape[0] - start))
            self.reader.release_pages()  # the rows just read need not stay resident
            self._refuse_non_finite(name, w, first=start * per_row)

    def _refuse_non_finite(self, name: str, w: np.ndarray, first: int = 0) -> None:
        """Raise, naming the tensor, the element (`first` = the flat index of w's first value in the tensor) and
        for quantized types the block, if w holds a NaN/inf."""
        if w.size and not np.isfinite(w).all():
            flat = int(np.flatnonzero(~np.isfinite(w.reshape(-1)))[0])
            raise ValueError(f"{self.path}: tensor {name!r} holds {w.reshape(-1)[flat]} at element {first + flat}"
                             f"{_block_of(self.tensors[name].tensor_type, first + flat)}")

    def tensor_types(self) -> dict[str, int]:
        """How many tensors of each storage type the file holds (e.g. {'Q4_1': 210, 'F32': 61})."""
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
        return out


# LlamaConfig field -> the GGUF key (after '<arch>.') it is read from, for error messages.
_CONFIG_KEYS = {"dim": "embedding_length", "n_layers": "block_count", "n_heads": "attention.head_count",
                "n_kv_heads": "attention.head_count_kv", "head_dim": "attention.key_length",
                "ffn_dim": "feed_forward_length", "vocab_size": "vocab_size",
                "norm_eps": "attention.layer_norm_rms_epsilon", "rope_base": "rope.freq_base",
                "rope_dim": "rope.dimension_count", "rope_linear_scale": "rope.scaling.factor",
                "context_length": "context_length"}


def _shown(v) -> str:
    """A metadata value for an error message: its type and a short repr."""
    r = repr(v)
    return f"{type(v).__name__} {r[:60] + '...' if len(r) > 60 else r}"


def _block_of(qtype, element: int) -> str:
    """' (block N of type Q)' for a quantized tensor's flat element index, '' for float types."""
    import gguf

    block = gguf.GGML_QUANT_SIZES.get(qtype, (1, 0))[0]
    return f" (block {element // block} of {qtype.name})" if block > 1 else ""
