"""The Llama model: embedding, blocks, final norm, output head, and the preallocated KV cache."""
from __future__ import annotations

import torch
from torch import nn

from frugalnn.llm import fast
from frugalnn.llm.gguf_file import LlamaConfig
from frugalnn.llm.layers import Block, DenseLinear, Embedding, ModuleList, RMSNorm, StoredEmbedding, rope_table
from frugalnn.tmac.nn import LUTLinear
from frugalnn.watch import StructureWatch, Watched, attach


class Llama(Watched):
    """A Llama decoder. Build one with `frugalnn.llm.load(path_or_'smollm2', bits=...)`.

    forward(tokens [B, T], start=None): with start=None a full causal pass over the tokens that
    neither reads nor writes the cache; with `setup_cache(...)` done, `start` is the position of tokens[:, 0] and k/v are
    written into the cache. Returns float32 logits [B, T, vocab] (only [B, 1, vocab] for the
    last position with last_only=True, which is all generation needs).

    Decode steps (one token, batch 1, with a cache) run on the compiled one-token decoder
    (fast.py, csrc/llama/driver.h) over the same buffers whenever the model is as loaded;
    converted/rerouted models, hooks and torch modes take the torch path. `fast_decode = False`
    forces the torch path; `fast_decode_reason()` says why a model is not on the fast path.
    """

    def __init__(self, config: LlamaConfig, embedding: torch.Tensor | StoredEmbedding, layers: list[Block],
                 norm: RMSNorm, output: nn.Module, max_positions: int | None = None):
        super().__init__()
        self.config = config
        self.embedding = embedding if isinstance(embedding, StoredEmbedding) else \
            Embedding.from_pretrained(embedding, freeze=True)
        self.layers = ModuleList(layers)
        self.norm = norm
        self.output = output
        self.max_positions = max_positions or config.context_length
        self.register_buffer("rope", rope_table(config.rope_dim, self.max_positions, config.rope_base,
                                                config.rope_linear_scale).unsqueeze(1), persistent=False)
        self.cache_len = 0  # positions the preallocated cache can hold (0: no cache)
        self.cache_batch = 0
        self.fast_decode = True
        self.__dict__["_watch"] = StructureWatch()
        attach(self, self._watch)

    def __getstate__(self):
        state = dict(super().__getstate__())
        for derived in ("_fast", "_linear_timer"):  # the compiled decoder is bound to this model's buffers
            state.pop(derived, None)
        return state

    def setup_cache(self, max_len: int, batch: int = 1, keep: bool = False) -> None:
        """Allocate k/v for `max_len` positions; decode then writes into it in place. A cache that already holds
        that much stays; keep=True copies what a smaller one holds into the new one (a cache that grows)."""
        c = self.config
        if not 1 <= max_len <= self.max_positions:
            raise ValueError(f"max_len: expected 1..{self.max_positions} (the model's context), got {max_len}")
        if max_len <= self.cache_len and batch <= self.cache_batch:
            return
        shape = (c.n_layers, batch, c.n_kv_heads, max_len, c.head_dim)
        k, v = torch.zeros(shape, dtype=torch.float32), torch.zeros(shape, dtype=torch.float32)
        if keep and self.cache_len:
            b, n = min(batch, self.cache_batch), self.cache_len
            k[:, :b, :, :n] = self._k[:, :b]
            v[:, :b, :, :n] = self._v[:, :b]
        self._k, self._v = k, v
        for i, layer in enumerate(self.layers):
            attn = _unwrap(layer.attention)
            attn.k_cache, attn.v_cache = self._k[i], self._v[i]
        self.cache_len, self.cache_batch = max_len, batch

    def drop_cache(self) -> None:
        for layer in self.layers:
            attn = _unwrap(layer.attention)
            attn.k_cache = attn.v_cache = None
        self._k = self._v = None
        self.cache_len = self.cache_batch = 0

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start: int | None = None, last_only: bool = False) -> torch.Tensor:
        B, T = tokens.shape
        pos0 = 0 if start is None else start
        end = pos0 + T
        if start is not None and (self.cache_len == 0 or end > self.cache_len or B > self.cache_batch):
            raise ValueError(f"positions {pos0}..{end} (batch {B}) do not fit the KV cache "
                             f"({self.cache_len} positions, batch {self.cache_batch}); call setup_cache first")
        if end > self.max_positions:
            raise ValueError(f"sequence of {end} tokens exceeds the model's context of {self.max_positions}")
        if T == 1 and B == 1 and start is not None and self.fast_decode:
            logits = fast.fast_step(self, tokens, pos0)
            if logits is not None:
                return logits
        rot = self.rope[pos0:end]
        mask = None
        if T > 1 and pos0 > 0:  # new tokens see all cached positions and the causal part of themselves
            mask = torch.ones(T, end, dtype=torch.bool).tril(diagonal=pos0)
        x = self.embedding(tokens)
        cache_pos = -1 if start is None else pos0  # -1: attend to these tokens only, leave the cache alone
        for layer in self.layers:
            x = layer(x, rot, cache_pos, mask)
        if last_only:
            x = x[:, -1:]
        return self.output(self.norm(x))

    def fast_decode_reason(self) -> str:
        """'' when decode steps run on the compiled decoder, else why they take the torch path."""
        return fast.reason(self)

    def set_threads(self, threads: int | None) -> None:
        """Threads for every LUT kernel call (None: all cores); also sets torch's intra-op threads."""
        if threads is not None:
            torch.set_num_threads(torch_threads(getattr(self, "bits", "fp32"), threads))
        for lin in self.linears().values():
            lin.set_threads(threads)

    def linears(self) -> dict[str, LUTLinear | DenseLinear]:
        """The linear layers by name (the parts of a StackedLinear included)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, (LUTLinear, DenseLinear))}

    def weight_bytes(self) -> int:
        """Bytes of the weights a decode step reads (linear layers + norms; the embedding is a row lookup)."""
        norms = sum(m.weight.numel() * 4 for m in self.modules() if isinstance(m, RMSNorm))
        return sum(lin.nbytes for lin in self.linears().values()) + norms

    def weight_bits(self) -> float:
        """Bits per weight the linear layers really hold (codes, scales and zero terms; float32 = 32)."""
        held = sum(lin.nbytes for lin in self.linears().values())
        count = sum(lin.in_features * lin.out_features for lin in self.linears().values())
        return 8.0 * held / count


def torch_threads(bits: str, threads: int) -> int:
    """torch intra-op threads to pair with `threads` kernel threads.

    With LUT weights the heavy work runs in the LUT kernels on their own threads; what is left for
    torch is tiny at decode (vectors of 576..3072), where intra-op threading costs more in
    synchronisation than it saves: a SmolLM2 decode step measured 43 ms with 1 torch thread and
    98-118 ms with 2 (LUT kernels on 2 threads, shared 2-core machine). fp32 weights run in torch.
    """
    return threads if bits == "fp32" else 1


def _unwrap(module: nn.Module) -> nn.Module:
    """The attention module itself, looking through frugalnn.routing wrappers."""
    while hasattr(module, "inner") and not hasattr(module, "k_cache"):
        module = module.inner
    return module
