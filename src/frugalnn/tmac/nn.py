"""LUTLinear: an nn.Linear whose weight lives at b bits in the T-MAC lookup-table layout, and
LUTConfig, which `frugalnn.convert_` uses to swap a model's nn.Linear layers for it.

    from frugalnn.tmac import LUTConfig
    frugalnn.convert_(model, LUTConfig(bits=4, group_size=128), filter_fn=lambda m, fqn: "lm_head" not in fqn)

LUTLinear is the one LUT layer of the project: the Llama of frugalnn.llm is built from it, and
its compiled decode step reads each layer's `gemv_plan()`, so a converted model runs what
`frugalnn bench llm` measures.

The kernel is also a torch operator, `torch.ops.frugalnn.lut_matmul`:
torch.library.custom_op + register_fake, so modules using it trace under torch.compile and
FakeTensor/meta propagation; a flop formula (2 * MACs) so torch.utils.flop_counter (and the
project's cost profiler) counts converted models. In eager mode with nothing intercepting torch
(frugalnn.watch.torch_overrides_active), LUTLinear calls the same kernel directly: the operator's
dispatch costs as much as the kernel on a one-token call at SmolLM2's 576-wide layers.
Layers with two-level (K-quant) scales have their own operator, `torch.ops.frugalnn.lut_matmul_kq`
(the same fake and flop formula), over the same kernel call as eager mode (ops.kq_args).
Inference only: there is no backward.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import register_flop_formula

from frugalnn import _core
from frugalnn._arrays import require_choice, threads_arg
from frugalnn.convert import register_handler, swap_modules
from frugalnn.threads import resolve_threads
from frugalnn.tmac.ops import GemvPlan, gemv_fn, gemv_plan, matmul_numpy
from frugalnn.tmac.weight import TERNARY, LUTWeight
from frugalnn.watch import Watched, torch_overrides_active


def weight_view(packed: torch.Tensor, ws: torch.Tensor, zt: torch.Tensor, m: int, k: int, bits: int,
                group_size: int, has_zero: bool) -> LUTWeight:
    """A LUTWeight over tensors' memory (no copy)."""
    return LUTWeight((m, k), bits, group_size, packed.numpy(), ws.numpy(), zt.numpy() if has_zero else None)


def _check_x(x: torch.Tensor, k: int) -> None:
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"x: expected shape [..., {k}], got {tuple(x.shape)}")


def _check_packed(packed: torch.Tensor, m: int, k: int, bits: int, group_size: int) -> None:
    """The codes fit (m, k, bits, group_size), checked before the [N, m] output is allocated: a wrong m
    must not become a huge allocation ahead of the kernel's own checks."""
    from frugalnn.kernels import lut as lutk

    nbytes = lutk.layout_sizes(m, k, group_size, bits)[2]
    if tuple(packed.shape) != (nbytes,):
        raise ValueError(f"packed: expected {nbytes} bytes for M={m}, K={k}, group_size={group_size}, bits={bits}, "
                         f"got shape {tuple(packed.shape)}")


@torch.library.custom_op("frugalnn::lut_matmul", mutates_args=())
def lut_matmul(x: torch.Tensor, packed: torch.Tensor, ws: torch.Tensor, zt: torch.Tensor, m: int, k: int,
               bits: int, group_size: int, has_zero: bool, threads: int | None) -> torch.Tensor:
    """x [..., K] (float32, CPU) @ W.T -> [..., M] float32; W in the LUT layout (frugalnn.tmac)."""
    _check_x(x, k)
    _check_packed(packed, m, k, bits, group_size)
    w = weight_view(packed, ws, zt, m, k, bits, group_size, has_zero)
    a = np.ascontiguousarray(x.detach().reshape(-1, k).to(torch.float32).numpy())
    y = matmul_numpy(a, w, resolve_threads(threads))
    return torch.from_numpy(y).reshape(*x.shape[:-1], m)


@lut_matmul.register_fake
def _lut_matmul_fake(x, packed, ws, zt, m, k, bits, group_size, has_zero, threads):
    return x.new_empty((*x.shape[:-1], m), dtype=torch.float32)


@register_flop_formula(torch.ops.frugalnn.lut_matmul)
def _lut_matmul_flops(x_shape, packed_shape, ws_shape, zt_shape, m, k, *args, out_shape=None, **kwargs) -> int:
    """2 FLOPs per multiply-accumulate of the equivalent dense matmul: 2 * tokens * M * K."""
    return 2 * math.prod(x_shape[:-1]) * m * k


_KQ_BUFFERS = ("kq_sc", "kq_mn", "kq_d", "kq_dmin")  # two-level (K-quant) scales, tmac/kquants.py KScales


def kq_weight_view(packed: torch.Tensor, sc: torch.Tensor, mn: torch.Tensor, d: torch.Tensor, dmin: torch.Tensor,
                   m: int, k: int, bits: int, group_size: int, fmt: str, sub: int, zero: int, *,
                   ws: torch.Tensor | None = None, kind: str = "int", source: str = "float", name: str = "") -> LUTWeight:
    """A two-level LUTWeight over LUTLinear's buffers (no copy): an empty mn / dmin is "none", fp16 d/dmin are
    held as int16 bit patterns. ws: the layer's empty one-level scales (None: an empty array of that shape)."""
    from frugalnn.kernels.lut import KQ_FORMATS
    from frugalnn.tmac.kquants import KScales

    require_choice(fmt, "fmt", tuple(KQ_FORMATS))
    for arg, t in (("d", d), ("dmin", dmin)):
        if t.numel() and t.element_size() != 2:
            raise TypeError(f"{arg}: expected fp16 bit patterns (int16 or float16), got {t.dtype}")
    opt = lambda t: None if t.numel() == 0 else t.numpy()  # noqa: E731
    ks = KScales(fmt, sub, zero, sc.numpy(), opt(mn), d.numpy().view(np.uint16),
                 None if dmin.numel() == 0 else dmin.numpy().view(np.uint16), name)
    ws_np = np.empty((0, 0, 32), np.float32) if ws is None else ws.numpy()
    return LUTWeight((m, k), bits, group_size, packed.numpy(), ws_np, None, kind, source, ks)


def _kq_view(layer: "LUTLinear") -> LUTWeight:
    fmt, sub, zero, name = layer.kq_meta
    return kq_weight_view(layer.packed, *(getattr(layer, n) for n in _KQ_BUFFERS), layer.out_features,
                          layer.in_features, layer.bits, layer.group_size, fmt, sub, zero, ws=layer.ws,
                          kind=layer.kind, source=layer.source, name=name)


@torch.library.custom_op("frugalnn::lut_matmul_kq", mutates_args=())
def lut_matmul_kq(x: torch.Tensor, packed: torch.Tensor, sc: torch.Tensor, mn: torch.Tensor, d: torch.Tensor,
                  dmin: torch.Tensor, m: int, k: int, bits: int, group_size: int, fmt: str, sub: int, zero: int,
                  threads: int | None) -> torch.Tensor:
    """x [..., K] (float32, CPU) @ W.T -> [..., M] float32; W in the LUT layout with two-level (K-quant) scales:
    LUTLinear's buffers packed, kq_sc, kq_mn, kq_d, kq_dmin and its kq_meta (fmt, sub, zero)."""
    _check_x(x, k)
    _check_packed(packed, m, k, bits, group_size)
    w = kq_weight_view(packed, sc, mn, d, dmin, m, k, bits, group_size, fmt, sub, zero)
    a = np.ascontiguousarray(x.detach().reshape(-1, k).to(torch.float32).numpy())
    y = matmul_numpy(a, w, resolve_threads(threads))
    return torch.from_numpy(y).reshape(*x.shape[:-1], m)


@lut_matmul_kq.register_fake
def _lut_matmul_kq_fake(x, packed, sc, mn, d, dmin, m, k, bits, group_size, fmt, sub, zero, threads):
    _check_x(x, k)  # a wrong width fails while tracing, with the eager message
    return x.new_empty((*x.shape[:-1], m), dtype=torch.float32)


@register_flop_formula(torch.ops.frugalnn.lut_matmul_kq)
def _lut_matmul_kq_flops(x_shape, packed_shape, sc_shape, mn_shape, d_shape, dmin_shape, m, k, *args,
                         out_shape=None, **kwargs) -> int:
    """As lut_matmul: 2 * tokens * M * K."""
    return 2 * math.prod(x_shape[:-1]) * m * k


class _Resolved:
    """What LUTLinear derives from its buffers and `threads` once (dropped on any change):
    the LUTWeight view (which remembers its tuned tiles) and, on first use, the one-token call."""

    __slots__ = ("view", "threads", "plan", "one_token")

    def __init__(self, layer: "LUTLinear"):
        self.view = _kq_view(layer) if layer.kq_meta else \
            weight_view(layer.packed, layer.ws, layer.zt, layer.out_features, layer.in_features, layer.bits,
                        layer.group_size, layer.has_zero)
        self.threads = resolve_threads(layer.threads)
        self.plan: GemvPlan | None = None
        self.one_token = None

    def gemv(self):
        if self.one_token is None and self.view.kq is not None:  # two-level: a KQPlan, its own lean call
            self.plan = gemv_plan(self.view, self.threads)
            fn, m = gemv_fn(self.view, self.threads), self.view.shape[0]
            self.one_token = lambda x: fn(x).view(*x.shape[:-1], m)
        if self.one_token is None:
            self.plan = gemv_plan(self.view, self.threads)
            self.one_token = _one_token_call(self.plan)
        return self.one_token


def _one_token_call(plan: GemvPlan):
    """fn(x [..., K] float32 contiguous, one row) -> [..., M]: allocate the output, enter the kernel."""
    kernel, args, tail, m, k = _core.lut.matmul, plan.weight_args, plan.tile_args, plan.m, plan.k

    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(1, m)
        kernel(x.detach().numpy().reshape(1, k), *args, out.numpy(), *tail)
        return out.view(*x.shape[:-1], m)

    return run


class LUTLinear(Watched):
    """y = x @ W.T + b with W a LUTWeight (inference only).

    threads: for the kernel (None: all cores), resolved once; `set_threads` changes it. One-token
    calls (x with a single row of K float32 values, as in decode) take a lean path whose threads and
    tile configuration are resolved on first use; batched calls tune their tiles once per batch kind.
    Both call the kernel directly unless something intercepts torch or fx.symbolic_trace runs (then the
    operator: `torch.ops.frugalnn.lut_matmul`, or `lut_matmul_kq` for two-level scales).
    """

    def __init__(self, weight: LUTWeight, bias: torch.Tensor | None = None, threads: int | None = None):
        super().__init__()
        if not isinstance(weight, LUTWeight):
            raise TypeError(f"weight: expected a LUTWeight, got {type(weight).__name__}")
        self.out_features, self.in_features = (int(d) for d in weight.shape)
        self.bits, self.group_size, self.kind, self.source = weight.bits, weight.group_size, weight.kind, weight.source
        self.threads = _threads(threads)
        self.register_buffer("packed", torch.from_numpy(weight.packed))
        self.register_buffer("ws", torch.from_numpy(weight.ws))
        self.has_zero = weight.zt is not None
        self.register_buffer("zt", torch.from_numpy(weight.zt) if self.has_zero else torch.empty(0))
        # two-level (K-quant) scales as stored (issue 18): integer sub-block bytes, fp16 d/dmin as int16 bits
        kq = weight.kq
        self.kq_meta = None if kq is None else (kq.fmt, kq.sub, kq.zero, kq.name)
        empty = torch.empty(0, dtype=torch.uint8)
        self.register_buffer("kq_sc", empty if kq is None else torch.from_numpy(kq.sc))
        self.register_buffer("kq_mn", empty if kq is None or kq.mn is None else torch.from_numpy(kq.mn))
        self.register_buffer("kq_d", empty if kq is None else torch.from_numpy(kq.d.view(np.int16)))
        self.register_buffer("kq_dmin", empty if kq is None or kq.dmin is None else
                             torch.from_numpy(kq.dmin.view(np.int16)))
        if bias is not None:
            bias = torch.as_tensor(bias).detach().to(torch.float32).reshape(self.out_features).clone()
            self.bias = nn.Parameter(bias, requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int | str = 4, group_size: int = 128, symmetric: bool = True,
                    threads: int | None = None) -> "LUTLinear":
        w = LUTWeight.from_float(linear.weight.detach().to(torch.float32), bits, group_size, symmetric)
        return cls(w, linear.bias, threads)

    # ---- derived state, resolved once ----------------------------------------------------------
    def _changed(self) -> None:
        super()._changed()
        self.__dict__.pop("_resolved", None)  # buffers or threads may differ now: re-derive on next use

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_resolved", None)  # views of this layer's buffers: a copy derives its own
        return state

    def _apply(self, fn, recurse: bool = True):
        # The codes, scales and zero terms are one stored weight format (the kernel reads float32 scales), so a
        # model-wide .half() / .double() / .to(dtype) leaves them as they are: converting the scales to fp16 and
        # back would change the weights, and the kernel would refuse fp64 ones. The layer follows such a
        # conversion where it is visible, in its output: it returns the input's dtype. Device moves still apply.
        held = {name: self._buffers[name] for name in ("ws", "zt")}
        bias = None if self.bias is None else self.bias.data
        out = super()._apply(fn, recurse)
        for name, before in held.items():
            after = self._buffers[name]
            if after.dtype != before.dtype:
                self._buffers[name] = before.to(after.device)
        if bias is not None and self.bias.dtype != bias.dtype:
            self.bias.data = bias.to(self.bias.device)
        self._changed()
        return out

    def _resolved_state(self) -> _Resolved:
        r = self.__dict__.get("_resolved")
        if r is None:
            r = self.__dict__["_resolved"] = _Resolved(self)  # not an assignment: must not count as a change
        return r

    def set_threads(self, threads: int | None) -> None:
        """Threads for the kernel (None: all cores)."""
        self.threads = _threads(threads)

    def gemv_plan(self) -> GemvPlan:
        """The one-token kernel call this layer runs (what the Llama's compiled decoder runs for it); a
        two-level (K-quant) layer gives an ops.KQPlan."""
        r = self._resolved_state()
        r.gemv()
        return r.plan

    @property
    def lut_weight(self) -> LUTWeight:
        return self._resolved_state().view

    @property
    def nbytes(self) -> int:
        """Bytes of weight held (codes + scales + zero terms; the bias not included)."""
        return self.lut_weight.nbytes

    @property
    def bits_per_weight(self) -> float:
        return self.lut_weight.bits_per_weight

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch_overrides_active() or isinstance(x, torch.fx.Proxy):  # a trace, a mode or hooks: the operator
            y = self._operator(x)
        elif x.dtype == torch.float32 and x.shape[-1] == self.in_features == x.numel() and x.is_contiguous():
            y = self._resolved_state().gemv()(x)
        else:
            y = self._batched(x)
        if self.bias is not None:
            y = y + self.bias
        return _in_input_dtype(y, x)

    def _operator(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel as the torch operator that traces, fake tensors and flop counters see."""
        if self.kq_meta:
            fmt, sub, zero, _ = self.kq_meta
            return torch.ops.frugalnn.lut_matmul_kq(x, self.packed, self.kq_sc, self.kq_mn, self.kq_d, self.kq_dmin,
                                                    self.out_features, self.in_features, self.bits, self.group_size,
                                                    fmt, sub, zero, self.threads)
        zt = self.zt if self.has_zero else self.ws
        return torch.ops.frugalnn.lut_matmul(x, self.packed, self.ws, zt, self.out_features, self.in_features,
                                             self.bits, self.group_size, self.has_zero, self.threads)

    def _batched(self, x: torch.Tensor) -> torch.Tensor:
        k = self.in_features
        _check_x(x, k)
        r = self._resolved_state()
        a = np.ascontiguousarray(x.detach().reshape(-1, k).to(torch.float32).numpy())
        return torch.from_numpy(matmul_numpy(a, r.view, r.threads)).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        what = "ternary" if self.kind == TERNARY else f"bits={self.bits}, group_size={self.group_size}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, {what}, "
                f"bias={self.bias is not None}, source={self.source}")


def _in_input_dtype(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y (float32) in x's floating dtype; as is for float32 or integer x."""
    return y if x.dtype == torch.float32 or not x.dtype.is_floating_point else y.to(x.dtype)


torch.fx.wrap("_in_input_dtype")  # fx.symbolic_trace records it as a call (x's dtype is unknown while tracing)


def _threads(threads) -> int | None:
    """None (all cores) or a positive int; anything else is a ValueError/TypeError naming it."""
    threads_arg(threads)
    return threads


@dataclass
class LUTConfig:
    """Swap nn.Linear layers for LUTLinear: `bits` 1..4 (up to 8) or "ternary", group-wise scales."""

    bits: int | str = 4
    group_size: int = 128
    symmetric: bool = True
    threads: int | None = None

    def __post_init__(self):
        if self.bits != TERNARY and (isinstance(self.bits, bool) or not isinstance(self.bits, int)
                                     or not 1 <= self.bits <= 8):
            raise ValueError(f"bits: expected 1..8 or 'ternary', got {self.bits!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 4 \
                or self.group_size % 4:
            raise ValueError(f"group_size: expected a positive multiple of 4, got {self.group_size!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads: expected None or a positive int, got {self.threads!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LUTConfig":
        return cls(**d)


@register_handler(LUTConfig)
def _convert_lut(model, config: LUTConfig, filter_fn=None):
    def pick(module, fqn):
        if not isinstance(module, nn.Linear) or (filter_fn is not None and not filter_fn(module, fqn)):
            return False
        k = module.in_features
        if config.bits != TERNARY and k % config.group_size:
            raise ValueError(f"{fqn}: in_features {k} is not divisible by group_size {config.group_size} "
                             f"(exclude it with filter_fn or pick another group_size)")
        if k % 4:
            raise ValueError(f"{fqn}: in_features {k} is not a multiple of 4 (exclude it with filter_fn)")
        return True

    def make(module, fqn):
        return LUTLinear.from_linear(module, config.bits, config.group_size, config.symmetric, config.threads)

    swap_modules(model, pick, make)
    return model
