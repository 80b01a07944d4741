"""The fast decode path: one C++ call per token (csrc/llama/driver.h) over the torch model's own buffers.

A decode step of a small Llama is dominated by per-op dispatch in eager torch (SmolLM2: ~35 ops per
layer x 30 layers at a few microseconds each, ~10 ms, against ~9 ms of kernels). `FastDecoder`
hands every weight the model holds (DenseLinear float32 tensors; for each frugalnn.tmac.LUTLinear
its own `gemv_plan()`: the arrays, threads and tiles its one-token path runs, zero-copy), the RoPE
table and the KV cache to `frugalnn._core.llama.Decoder`, which runs a whole token in one call.

The torch model stays the reference and the fallback: `Llama.forward` uses the fast path only for
one token of one sequence with a cache, and only while the model is exactly what `load` built.
Anything else runs the torch path, with no per-token cost for the check:
  - a module swapped or rerouted (`convert_`, `route_`: the L-Mul / FuseMax attention must see
    every SDPA call), a forward hook registered on a submodule, an attribute assigned: the
    modules' StructureWatch version (frugalnn.watch) moves and the plan is rebuilt, and refused, at
    the next step (a LUTLinear that convert_ put in is accepted: it is the layer the decoder reads);
  - a torch function or dispatch mode active (FlopCounterMode, a routing mode around the model),
    global module hooks, torch.compile tracing: checked per call (a few attribute reads);
  - `model.fast_decode = False`.
`reason` says why a model is not eligible. Weights changed in place (`w.copy_(...)`) are seen by
both paths; rebinding a tensor's `.data` is not seen by the plan: assign the parameter instead.
"""
from __future__ import annotations

import numpy as np
import torch

from frugalnn.llm.layers import Block, DenseLinear, Embedding, LlamaAttention, ModuleList, RMSNorm, StackedLinear, \
    StoredEmbedding, SwiGLU
from frugalnn.threads import resolve_threads
from frugalnn.tmac.nn import LUTLinear
from frugalnn.watch import attach, torch_overrides_active

_INDEX_DTYPES = (torch.int64, torch.int32)
_LINEARS = (DenseLinear, LUTLinear)


class Ineligible(Exception):
    """The model (as it is now) cannot run on the C++ decoder; the message says why."""


class FastDecoder:
    """A compiled one-token decoder bound to a Llama at one StructureWatch version."""

    def __init__(self, model, version: int):
        self.version = version
        self.decoder = None
        self.reason = ""
        try:
            self.decoder = _build(model)
        except Ineligible as e:
            self.reason = str(e)
        self.vocab = model.config.vocab_size
        emb = model.embedding
        self.rows = emb.rows if type(emb) is StoredEmbedding else None  # the decoder then holds no table

    def _run(self, token: int, pos: int, logits: np.ndarray) -> None:
        if self.rows is None:
            self.decoder.step(token, pos, logits)
        else:
            self.decoder.step_row(self.rows([token])[0], pos, logits)

    def step(self, token: int, pos: int, timer=None) -> torch.Tensor:
        """Logits [1, 1, vocab] of `token` at position `pos`; writes its k/v into the model's cache."""
        out = torch.empty(1, 1, self.vocab)
        dec = self.decoder
        if timer is None:
            self._run(token, pos, out.numpy().reshape(-1))
            return out
        dec.profile = True
        try:
            self._run(token, pos, out.numpy().reshape(-1))
        finally:
            timer.add(dec.linear_seconds)
            dec.linear_seconds = 0.0
            dec.profile = False
        return out


def fast_step(model, tokens: torch.Tensor, pos: int):
    """Logits from the C++ decoder, or None when this call must take the torch path."""
    if tokens.dtype not in _INDEX_DTYPES or torch_overrides_active():
        return None
    fast = model.__dict__.get("_fast")
    if fast is None or fast.version != model._watch.version:
        fast = FastDecoder(model, model._watch.version)
        model.__dict__["_fast"] = fast  # not an attribute assignment: that would bump the version
    if fast.decoder is None:
        return None
    return fast.step(tokens.item(), pos, model.__dict__.get("_linear_timer"))


def reason(model) -> str:
    """'' when the next decode step of `model` will run on the C++ decoder, else why not."""
    if not getattr(model, "fast_decode", False):
        return "fast_decode is off"
    if model.cache_len == 0:
        return "no KV cache (call setup_cache)"
    if torch_overrides_active():
        return "a torch function/dispatch mode, global module hook or torch.compile trace is active"
    fast = model.__dict__.get("_fast")
    if fast is None or fast.version != model._watch.version:
        fast = FastDecoder(model, model._watch.version)
        model.__dict__["_fast"] = fast
    return fast.reason


def _exact(module, cls, where: str):
    if type(module) is not cls:
        raise Ineligible(f"{where} is {type(module).__name__}, not {cls.__name__} (converted or rerouted): "
                         "decode runs the torch path")
    if module._forward_hooks or module._forward_pre_hooks:
        raise Ineligible(f"{where} has forward hooks: decode runs the torch path so they fire")
    return module


def _f32(t: torch.Tensor, where: str, shape: tuple):
    if t.dtype != torch.float32 or tuple(t.shape) != shape or not t.is_contiguous() or t.device.type != "cpu":
        raise Ineligible(f"{where}: expected a contiguous float32 CPU tensor {shape}, "
                         f"got {t.dtype} {tuple(t.shape)}")
    return t.detach().numpy()


def _norm(m, where: str, dim: int, eps: float):
    _exact(m, RMSNorm, where)
    if m.eps != eps:
        raise Ineligible(f"{where}: eps {m.eps} differs from the final norm's {eps}")
    return _f32(m.weight, where, (dim,))


def _linears(m, where: str) -> list:
    if type(m) is StackedLinear:
        _exact(m, StackedLinear, where)
        _exact(m.parts, ModuleList, where + ".parts")
        return [_own_linear(p, f"{where}.parts.{i}") for i, p in enumerate(m.parts)]
    return [_own_linear(m, where)]


def _own_linear(m, where: str):
    if type(m) not in _LINEARS:
        raise Ineligible(f"{where} is {type(m).__name__}, not LUTLinear or DenseLinear (converted or rerouted): "
                         "decode runs the torch path")
    _exact(m, type(m), where)
    fwd = m.__dict__.get("forward")
    if fwd is not None:
        inner = getattr(fwd, "_frugalnn_inner", fwd)  # time_linears' wrapper around the real forward
        if getattr(inner, "__self__", None) is not m or inner.__func__ is not type(m).forward:
            raise Ineligible(f"{where}.forward was replaced: decode runs the torch path")
    if m.bias is not None:
        raise Ineligible(f"{where} has a bias, which the compiled decoder does not add: decode runs the torch path")
    return m


def _add(dec, layer: int, slot: str, module, where: str) -> None:
    for lin in _linears(module, where):
        if type(lin) is DenseLinear:
            w = _f32(lin.weight, where, (lin.out_features, lin.in_features))
            dec.add_dense(layer, slot, w, resolve_threads(lin.threads))
        elif getattr(lin, "kq_meta", None):  # two-level (K-quant) scales as stored (issue 18)
            from frugalnn.tmac.ops import kq_args

            dec.add_lut_kq(layer, slot, *kq_args(lin.lut_weight), resolve_threads(lin.threads))
        else:
            p = lin.gemv_plan()  # the very call LUTLinear's own one-token path makes
            dec.add_lut(layer, slot, *p.weight_args, *p.tile_args)


def _build(model):
    """A finished frugalnn._core.llama.Decoder over `model`'s buffers, or Ineligible."""
    try:
        from frugalnn._core import llama as core
    except ImportError as e:  # an extension built before csrc/llama existed
        raise Ineligible(f"the compiled decoder is not available ({e})") from None
    if not model.fast_decode:
        raise Ineligible("fast_decode is off")
    if model.cache_len == 0:
        raise Ineligible("no KV cache (call setup_cache)")
    _reattach_watch(model)
    c = model.config
    dim, H, Hkv, D = c.dim, c.n_heads, c.n_kv_heads, c.head_dim
    # (hooks on the Llama itself need no check: Llama.__call__ runs them around either path)
    stored = type(model.embedding) is StoredEmbedding
    emb = _exact(model.embedding, StoredEmbedding if stored else Embedding, "embedding")
    # a stored (quantized) embedding: the decoder gets no table, and each step the token's dequantized row
    table = np.zeros((0, dim), np.float32) if stored else _f32(emb.weight, "embedding", (c.vocab_size, dim))
    final = _exact(model.norm, RMSNorm, "norm")
    layers = _exact(model.layers, ModuleList, "layers")
    if len(layers) != c.n_layers:
        raise Ineligible(f"layers: {len(layers)} blocks, the config says {c.n_layers}")
    if model.rope.dtype != torch.complex64 or tuple(model.rope.shape) != (model.max_positions, 1, c.rope_dim // 2):
        raise Ineligible(f"rope: unexpected table {model.rope.dtype} {tuple(model.rope.shape)}")
    rope = torch.view_as_real(model.rope[:, 0])  # [max_pos, rope_dim/2, 2] (cos, sin), a view
    threads = _head_threads(model)
    dec = core.Decoder(dim, c.n_layers, H, Hkv, D, c.rope_dim, c.ffn_dim, c.vocab_size, model.max_positions,
                       float(final.eps), table, rope.numpy(),
                       _norm(final, "norm", dim, final.eps), threads)
    for i, block in enumerate(layers):
        p = f"layers.{i}"
        _exact(block, Block, p)
        attn = _exact(block.attention, LlamaAttention, p + ".attention")
        mlp = _exact(block.mlp, SwiGLU, p + ".mlp")
        if (attn.n_heads, attn.n_kv_heads, attn.head_dim, attn.rope_dim) != (H, Hkv, D, c.rope_dim):
            raise Ineligible(f"{p}.attention: heads/dims differ from the config")
        dec.set_norms(i, _norm(block.attn_norm, p + ".attn_norm", dim, final.eps),
                      _norm(block.ffn_norm, p + ".ffn_norm", dim, final.eps))
        _add(dec, i, "qkv", attn.wqkv, p + ".attention.wqkv")
        _add(dec, i, "o", attn.wo, p + ".attention.wo")
        _add(dec, i, "gate_up", mlp.gate_up, p + ".mlp.gate_up")
        _add(dec, i, "down", mlp.down, p + ".mlp.down")
        if attn.k_cache is None or attn.k_cache.data_ptr() != model._k[i].data_ptr():
            raise Ineligible(f"{p}.attention: its cache is not the model's")
    _add(dec, -1, "head", model.output, "output")
    try:
        dec.finish()
    except ValueError as e:  # shapes that the torch path would reject too
        raise Ineligible(str(e)) from None
    dec.set_cache(model._k.numpy(), model._v.numpy())
    return dec


def _head_threads(model) -> int:
    out = model.output
    lin = out.parts[0] if type(out) is StackedLinear else out
    return resolve_threads(getattr(lin, "threads", None))


def _reattach_watch(model) -> None:
    """Modules put in after load (e.g. a LUTLinear from convert_) report to the model's watch too."""
    attach(model, model._watch)
