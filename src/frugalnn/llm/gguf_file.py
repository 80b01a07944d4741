"""Read a Llama-architecture GGUF file: hyperparameters from its metadata, tensors as stored.

The `gguf` package does the parsing (memory-mapped, so opening a 4 GB file costs nothing until a
tensor is touched). Everything that can go wrong with a user's file (absent, truncated, not GGUF,
another architecture, missing tensors) becomes a one-line ValueError/FileNotFoundError naming it.

Layout note: llama.cpp's converter permutes the rows of attn_q/attn_k inside each head so that
llama.cpp's "normal" RoPE (rotating adjacent pairs 2i, 2i+1) reproduces the Hugging Face model,
which rotates halves. We keep the rows as stored and rotate adjacent pairs, so quantized tensors
can go straight into a kernel without being repacked; q.k is unchanged by a permutation applied
to both q and k, so logits agree with the Hugging Face layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# GGUF architectures whose tensors and hyperparameters follow the Llama layout exactly.
LLAMA_ARCHS = ("llama",)


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

    @property
    def n_params(self) -> int:
        attn = self.dim * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        return self.n_layers * (attn + 3 * self.dim * self.ffn_dim + 2 * self.dim) + self.vocab_size * self.dim + self.dim


class GGUFModelFile:
    """An opened GGUF file: `.config`, `.tensor(name)` (raw gguf ReaderTensor), `.float(name)` (fp32 numpy)."""

    def __init__(self, path: str | Path):
        import gguf

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such GGUF file")
        if not self.path.is_file():
            raise ValueError(f"{self.path}: is not a file")
        try:
            self.reader = gguf.GGUFReader(str(self.path))
        except Exception as e:  # the parser raises ValueError, struct/index errors, OSError... on damage
            raise ValueError(f"{self.path}: not a readable GGUF file ({type(e).__name__}: {e})") from None
        self.arch = self.meta("general.architecture", None)
        if self.arch not in LLAMA_ARCHS:
            raise ValueError(f"{self.path}: architecture {self.arch!r} is not supported (expected one of {LLAMA_ARCHS})")
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.config = self._config()
        self._check_tensors()

    def meta(self, key: str, default=...):
        field = self.reader.get_field(key)
        if field is None:
            if default is ...:
                raise ValueError(f"{self.path}: metadata key {key!r} is missing")
            return default
        value = field.contents()
        return value

    def _config(self) -> LlamaConfig:
        a = self.arch
        dim = int(self.meta(f"{a}.embedding_length"))
        n_heads = int(self.meta(f"{a}.attention.head_count"))
        n_kv = int(self.meta(f"{a}.attention.head_count_kv", n_heads))
        head_dim = int(self.meta(f"{a}.attention.key_length", dim // max(n_heads, 1)))
        emb = self.tensors.get("token_embd.weight")
        vocab = self.meta(f"{a}.vocab_size", None)
        if vocab is None:
            vocab = int(emb.shape[1]) if emb is not None else len(self.meta("tokenizer.ggml.tokens"))
        scaling = self.meta(f"{a}.rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise ValueError(f"{self.path}: rope scaling {scaling!r} is not supported (none or linear)")
        factor = float(self.meta(f"{a}.rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0
        if "rope_freqs.weight" in self.tensors:
            raise ValueError(f"{self.path}: per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 style) "
                             "are not supported")
        bos, eos = self.meta("tokenizer.ggml.bos_token_id", None), self.meta("tokenizer.ggml.eos_token_id", None)
        return LlamaConfig(
            dim=dim, n_layers=int(self.meta(f"{a}.block_count")), n_heads=n_heads, n_kv_heads=n_kv,
            head_dim=head_dim, ffn_dim=int(self.meta(f"{a}.feed_forward_length")), vocab_size=int(vocab),
            norm_eps=float(self.meta(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
            rope_base=float(self.meta(f"{a}.rope.freq_base", 10000.0)),
            rope_dim=int(self.meta(f"{a}.rope.dimension_count", head_dim)),
            rope_linear_scale=factor,
            context_length=int(self.meta(f"{a}.context_length", 2048)),
            bos_id=None if bos is None else int(bos), eos_id=None if eos is None else int(eos),
            name=str(self.meta("general.name", self.path.stem)))

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
        if not w.flags.writeable:  # F32 tensors come back as views of the read-only memory map
            w = w.copy()
        if w.size != int(np.prod(shape)):
            raise ValueError(f"{self.path}: tensor {name!r} holds {w.size} values, expected {shape}")
        return w.reshape(shape)

    def tensor_types(self) -> dict[str, int]:
        """How many tensors of each storage type the file holds (e.g. {'Q4_1': 210, 'F32': 61})."""
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
        return out
