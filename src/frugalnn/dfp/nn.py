"""DFP16 training in torch (Das et al. 2018): `frugalnn.convert_(model, DFPConfig())`.

Every converted Conv1d / Conv2d / Linear runs its three GEMMs per step on the int16 kernel
(frugalnn.kernels.dfp.gemm: int32 sums over K-chunks, float32 out):
    forward          y  = Q(x) @ Q(W)^T                 (conv: Q(x) lowered by an int16 im2col, NHWC order)
    input gradient   dx = Q(dy) @ Q(W)                  (conv: then col2im in fp32)
    weight gradient  dW = Q(dy)^T @ Q(x)                (conv: the im2col rebuilt from the saved int16 Q(x))
with Q the per-tensor DFP quantization (dfp/quantize.py: 2 bits of headroom, nearest or stochastic
rounding). The weights stay fp32 (the optimizer's master copy) and are re-quantized at every forward;
bias, BatchNorm, ReLU, pooling and the loss stay fp32, as do the first conv and the last linear layer
unless `keep_fp32=()` (the paper's choice, Das et al. section 4).

The layers are the custom ops `torch.ops.frugalnn.dfp_linear` and `dfp_conv2d` (their backwards
`dfp_linear_backward` / `dfp_conv2d_backward`; all `torch.library.custom_op` + `register_fake`, joined
by `register_autograd`), so torch.compile traces and DDP hooks see ordinary ops. Conv1d runs as a
conv2d of height 1. The forward op returns the int16 operands with the output, and the
backward reuses them: what the forward multiplied is what the gradients are computed against.

Not converted (left fp32, visible in print(model)): grouped convs and padding modes other than zeros.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.convert import FilterFn, register_handler, swap_modules
from frugalnn.dfp.quantize import count_call, quantize
from frugalnn.formats.dfp import ROUNDINGS
from frugalnn.kernels import dfp as kernel

Tensor = torch.Tensor
KEEP_CHOICES = ("first_conv", "last_linear")  # or any module name (fqn)
_CAPTURE: list | None = None


class Operands(NamedTuple):
    layer: str
    gemm: str     # "forward", "input_gradient" or "weight_gradient"
    a: Tensor     # int16 [M, K]
    b: Tensor     # int16 [K, N] (possibly a transposed view)
    ea: int
    eb: int


def _gemm(a: Tensor, b: Tensor, ea: int, eb: int, chunk: int, bias: Tensor | None = None,
          transpose_b: bool = False, *, layer: str = "", gemm: str = "forward") -> Tensor:
    if _CAPTURE is not None:
        _CAPTURE.append(Operands(layer, gemm, a, b.t() if transpose_b else b, ea, eb))
    bias = None if bias is None else bias.detach().float().contiguous()
    # every operand here is a DFP quantization (|mantissa| <= mantissa_bound) and every chunk is at most
    # max_safe_chunk (DFPConfig refuses more), so no int32 sum can overflow: the kernel's max|a|, max|b|
    # pre-pass that proves it would be one more pass over both operands for nothing
    return kernel.gemm(a, b, ea, eb, chunk=chunk, bias=bias, threads=torch.get_num_threads(), transpose_b=transpose_b,
                       allow_overflow=True)


@contextlib.contextmanager
def capture_operands():
    """Record the Operands of every DFP GEMM run inside the block, in order (forward of each layer, then in
    backward input gradient and weight gradient of each) -- the overflow study reads them."""
    global _CAPTURE
    previous, _CAPTURE = _CAPTURE, []
    try:
        yield _CAPTURE
    finally:
        _CAPTURE = previous


def _exp(e: Tensor) -> int:
    return int(e.item())


@torch.library.custom_op("frugalnn::dfp_linear", mutates_args=(), device_types="cpu")
def dfp_linear_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], layer: str, bits: int, headroom: int,
                  chunk: int, stochastic: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x [M, K] @ weight [N, K]^T (+ bias) in DFP -> (y float32 [M, N], xq int16, ex, wq int16, ew)."""
    count_call(layer)
    xq, ex = quantize(x.contiguous(), bits, headroom, stochastic, layer=layer, kind="activation")
    wq, ew = quantize(weight.contiguous(), bits, headroom, stochastic, layer=layer, kind="weight")
    y = _gemm(xq, wq, ex, ew, chunk, bias, transpose_b=True, layer=layer)
    return y, xq, torch.tensor(ex, dtype=torch.int32), wq, torch.tensor(ew, dtype=torch.int32)


@dfp_linear_op.register_fake
def _dfp_linear_fake(x, weight, bias, layer, bits, headroom, chunk, stochastic):
    e = x.new_empty((), dtype=torch.int32)
    return (x.new_empty((x.shape[0], weight.shape[0])), x.new_empty(x.shape, dtype=torch.int16), e,
            weight.new_empty(weight.shape, dtype=torch.int16), e.clone())


@torch.library.custom_op("frugalnn::dfp_linear_backward", mutates_args=(), device_types="cpu")
def dfp_linear_backward_op(grad: Tensor, xq: Tensor, ex: Tensor, wq: Tensor, ew: Tensor, layer: str, bits: int,
                           headroom: int, chunk: int, stochastic: bool, need_input: bool,
                           need_weight: bool) -> tuple[Tensor, Tensor]:
    """(dx = Q(grad) @ wq, dW = Q(grad)^T @ xq) in DFP; an empty tensor for a gradient not needed."""
    gq, eg = quantize(grad.contiguous(), bits, headroom, stochastic, layer=layer, kind="gradient")
    empty = grad.new_empty(0)
    dx = _gemm(gq, wq, eg, _exp(ew), chunk, layer=layer, gemm="input_gradient") if need_input else empty
    dw = _gemm(gq.t().contiguous(), xq, eg, _exp(ex), chunk, layer=layer, gemm="weight_gradient") \
        if need_weight else empty
    return dx, dw


@dfp_linear_backward_op.register_fake
def _dfp_linear_backward_fake(grad, xq, ex, wq, ew, layer, bits, headroom, chunk, stochastic, need_input,
                              need_weight):
    dx = grad.new_empty((grad.shape[0], wq.shape[1])) if need_input else grad.new_empty(0)
    dw = grad.new_empty((grad.shape[1], xq.shape[1])) if need_weight else grad.new_empty(0)
    return dx, dw


def _setup(ctx, inputs, output):
    _, _, bias, layer, bits, headroom, chunk, stochastic = inputs
    _, xq, ex, wq, ew = output
    ctx.save_for_backward(xq, ex, wq, ew)
    ctx.args = (layer, bits, headroom, chunk, stochastic)
    ctx.has_bias = bias is not None


def _backward(ctx, grad, *_int_outputs):
    xq, ex, wq, ew = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx, dw = dfp_linear_backward_op(grad.contiguous(), xq, ex, wq, ew, *ctx.args, need_x, need_w)
    db = grad.sum(0) if need_b and ctx.has_bias else None
    return dx if need_x else None, dw if need_w else None, db, None, None, None, None, None


dfp_linear_op.register_autograd(_backward, setup_context=_setup)


# Conv2d: the GEMM runs on an int16 im2col of the quantized input in NHWC order (rows: output
# positions; columns: (kh, kw, C), the weight permuted to match), so the activation is quantized
# once per tensor before the 9x blow-up of the columns, and only the int16 NHWC input is saved for
# backward (the columns are rebuilt from it). Outputs are NCHW tensors in channels-last memory:
# the GEMM's [B*oh*ow, out] result without a copy.

def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _im2col(xp: Tensor, kh: int, kw: int, stride, dilation, oh: int, ow: int) -> Tensor:
    """xp [B, Hp, Wp, C] (padded, contiguous) -> [B*oh*ow, kh*kw*C], one copy."""
    b, _, _, c = xp.shape
    sb, sh, sw, sc = xp.stride()
    view = xp.as_strided((b, oh, ow, kh, kw, c), (sb, sh * stride[0], sw * stride[1], sh * dilation[0],
                                                  sw * dilation[1], sc))
    return view.reshape(b * oh * ow, kh * kw * c)


def _col2im(cols: Tensor, shape, kh: int, kw: int, stride, dilation, oh: int, ow: int) -> Tensor:
    """The adjoint of _im2col in float32: [B*oh*ow, kh*kw*C] -> padded [B, Hp, Wp, C], tap by tap."""
    b, hp, wp, c = shape
    out = cols.new_zeros((b, hp, wp, c))
    taps = cols.view(b, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dilation[0], j * dilation[1]
            out[:, h0:h0 + stride[0] * (oh - 1) + 1:stride[0], w0:w0 + stride[1] * (ow - 1) + 1:stride[1]] += \
                taps[:, :, :, i, j]
    return out


def _quantize_nhwc(x: Tensor, bits: int, headroom: int, stochastic: bool, layer: str, kind: str):
    """Q(x) for x [B, C, H, W], returned as int16 [B, H, W, C] (a view). Per-tensor quantization does not
    care about memory order, so a channels-last x (what these convs output, and what their gradients
    arrive in) is quantized where it lies, with no float copy; any other x is made contiguous NCHW
    first and the int16 result permuted (the callers copy it once anyway)."""
    nhwc = x.permute(0, 2, 3, 1)
    if nhwc.is_contiguous():
        return quantize(nhwc, bits, headroom, stochastic, layer=layer, kind=kind)
    q, e = quantize(x.contiguous(), bits, headroom, stochastic, layer=layer, kind=kind)
    return q.permute(0, 2, 3, 1), e


def _zero_border(xp: Tensor, padding) -> None:
    """Zero only the padding frame of xp [B, Hp, Wp, C]; the interior is overwritten next."""
    p0, p1 = padding
    if p0:
        xp[:, :p0].zero_()
        xp[:, xp.shape[1] - p0:].zero_()
    if p1:
        xp[:, :, :p1].zero_()
        xp[:, :, xp.shape[2] - p1:].zero_()


def _conv_shapes(x: Tensor, weight: Tensor, stride, padding, dilation):
    b, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    oh, ow = _out_size(h, kh, stride[0], padding[0], dilation[0]), _out_size(w, kw, stride[1], padding[1], dilation[1])
    return b, c, h, w, kh, kw, oh, ow


@torch.library.custom_op("frugalnn::dfp_conv2d", mutates_args=(), device_types="cpu")
def dfp_conv2d_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
                  dilation: list[int], layer: str, bits: int, headroom: int, chunk: int,
                  stochastic: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """conv2d(x [B, C, H, W], weight [O, C, kh, kw]) in DFP -> (y [B, O, oh, ow] channels-last,
    xq int16 [B, H+2p, W+2p, C], ex, wq int16 [O, kh*kw*C], ew)."""
    count_call(layer)
    b, c, h, w, kh, kw, oh, ow = _conv_shapes(x, weight, stride, padding, dilation)
    xq, ex = _quantize_nhwc(x, bits, headroom, stochastic, layer, "activation")
    xp = xq.new_empty((b, h + 2 * padding[0], w + 2 * padding[1], c))
    _zero_border(xp, padding)
    xp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = xq
    wq, ew = quantize(weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous(), bits, headroom,
                      stochastic, layer=layer, kind="weight")
    y = _gemm(_im2col(xp, kh, kw, stride, dilation, oh, ow), wq, ex, ew, chunk, bias, transpose_b=True, layer=layer)
    y = y.view(b, oh, ow, -1).permute(0, 3, 1, 2)
    return y, xp, torch.tensor(ex, dtype=torch.int32), wq, torch.tensor(ew, dtype=torch.int32)


@dfp_conv2d_op.register_fake
def _dfp_conv2d_fake(x, weight, bias, stride, padding, dilation, layer, bits, headroom, chunk, stochastic):
    b, c, h, w, kh, kw, oh, ow = _conv_shapes(x, weight, stride, padding, dilation)
    e = x.new_empty((), dtype=torch.int32)
    y = x.new_empty((b, oh, ow, weight.shape[0])).permute(0, 3, 1, 2)
    return (y, x.new_empty((b, h + 2 * padding[0], w + 2 * padding[1], c), dtype=torch.int16), e,
            weight.new_empty((weight.shape[0], c * kh * kw), dtype=torch.int16), e.clone())


def _input_grad_as_conv(gq: Tensor, eg: int, wq: Tensor, ew: int, kernel_size, padding, dilation, hw, chunk: int,
                        layer: str) -> Tensor:
    """dx of a stride-1 conv as the full convolution of Q(dy) with the flipped, transposed Q(W): an int16
    im2col of the zero-padded gradient times W^T [(kh, kw, O), C], straight into dx's NHWC memory.
    The same products as Q(dy) @ Q(W) followed by col2im, without the col2im: nine strided float32
    add passes over a 9x-blown-up [B*oh*ow, kh*kw*C] result (a fifth of the whole DFP16 step)."""
    b, oh, ow, o = gq.shape
    kh, kw = kernel_size
    h, w = hw
    t0, t1 = dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1]
    gp = gq.new_empty((b, oh + 2 * t0, ow + 2 * t1, o))
    _zero_border(gp, (t0, t1))
    gp[:, t0:t0 + oh, t1:t1 + ow] = gq
    c = wq.shape[1] // (kh * kw)
    wt = wq.view(-1, kh, kw, c).flip(1, 2).permute(3, 1, 2, 0).reshape(c, kh * kw * o)  # flip copies
    dx = _gemm(_im2col(gp, kh, kw, (1, 1), dilation, h, w), wt, eg, ew, chunk, transpose_b=True, layer=layer,
               gemm="input_gradient")
    return dx.view(b, h, w, c).permute(0, 3, 1, 2)  # channels-last, no copy


@torch.library.custom_op("frugalnn::dfp_conv2d_backward", mutates_args=(), device_types="cpu")
def dfp_conv2d_backward_op(grad: Tensor, xp: Tensor, ex: Tensor, wq: Tensor, ew: Tensor, kernel_size: list[int],
                           stride: list[int], padding: list[int], dilation: list[int], layer: str, bits: int,
                           headroom: int, chunk: int, stochastic: bool, need_input: bool,
                           need_weight: bool) -> tuple[Tensor, Tensor]:
    """(dx [B, C, H, W] channels-last, dW [O, C, kh, kw]) in DFP; empty for a gradient not needed."""
    b, o, oh, ow = grad.shape
    kh, kw = kernel_size
    _, hp, wp, c = xp.shape
    gq, eg = _quantize_nhwc(grad, bits, headroom, stochastic, layer, "gradient")
    g2 = gq.reshape(b * oh * ow, o)  # a view when grad was channels-last
    empty = grad.new_empty(0)
    dx = dw = empty
    if need_input and stride == [1, 1] and padding[0] <= dilation[0] * (kh - 1) and \
            padding[1] <= dilation[1] * (kw - 1):
        dx = _input_grad_as_conv(gq, eg, wq, _exp(ew), (kh, kw), padding, dilation, (hp - 2 * padding[0],
                                 wp - 2 * padding[1]), chunk, layer)
    elif need_input:
        dcols = _gemm(g2, wq, eg, _exp(ew), chunk, layer=layer, gemm="input_gradient")
        dxp = _col2im(dcols, xp.shape, kh, kw, stride, dilation, oh, ow)
        dx = dxp[:, padding[0]:hp - padding[0], padding[1]:wp - padding[1]].permute(0, 3, 1, 2)
        dx = dx.contiguous(memory_format=torch.channels_last)
    if need_weight:
        cols = _im2col(xp, kh, kw, stride, dilation, oh, ow)
        dw = _gemm(g2.t().contiguous(), cols, eg, _exp(ex), chunk, layer=layer, gemm="weight_gradient")
        dw = dw.view(o, kh, kw, c).permute(0, 3, 1, 2).contiguous()
    return dx, dw


@dfp_conv2d_backward_op.register_fake
def _dfp_conv2d_backward_fake(grad, xp, ex, wq, ew, kernel_size, stride, padding, dilation, layer, bits, headroom,
                              chunk, stochastic, need_input, need_weight):
    b, o = grad.shape[:2]
    _, hp, wp, c = xp.shape
    dx = grad.new_empty(0)
    if need_input:
        dx = torch.empty((b, c, hp - 2 * padding[0], wp - 2 * padding[1]), dtype=grad.dtype, device=grad.device,
                         memory_format=torch.channels_last)
    dw = grad.new_empty((o, c, *kernel_size)) if need_weight else grad.new_empty(0)
    return dx, dw


def _conv_setup(ctx, inputs, output):
    _, weight, bias, stride, padding, dilation, layer, bits, headroom, chunk, stochastic = inputs
    _, xp, ex, wq, ew = output
    ctx.save_for_backward(xp, ex, wq, ew)
    ctx.args = (list(weight.shape[2:]), stride, padding, dilation, layer, bits, headroom, chunk, stochastic)
    ctx.has_bias = bias is not None


def _conv_backward(ctx, grad, *_int_outputs):
    xp, ex, wq, ew = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx, dw = dfp_conv2d_backward_op(grad, xp, ex, wq, ew, *ctx.args, need_x, need_w)
    db = grad.sum((0, 2, 3)) if need_b and ctx.has_bias else None
    return (dx if need_x else None, dw if need_w else None, db) + (None,) * 8


dfp_conv2d_op.register_autograd(_conv_backward, setup_context=_conv_setup)


@dataclass
class DFPConfig:
    bits: int = 16
    chunk: int | None = None  # K values per int32 sum; None: the largest provably safe (31 for DFP16)
    rounding: str = "nearest"
    keep_fp32: tuple = ("first_conv", "last_linear")  # or () to convert those too; module names allowed
    headroom: int = 2

    def __post_init__(self):
        for name in ("bits", "headroom"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
        if self.bits not in (8, 16):
            raise ValueError(f"bits: expected 16 or 8 (int16 / int8 mantissas), got {self.bits}")
        if not 0 <= self.headroom <= self.bits - 2:
            raise ValueError(f"headroom: expected 0 <= headroom <= {self.bits - 2}, got {self.headroom}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding: expected one of {ROUNDINGS}, got {self.rounding!r}")
        if self.chunk is not None:
            if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
                raise ValueError(f"chunk: expected an int >= 1 or None, got {self.chunk!r}")
            if self.chunk > self.safe_chunk:
                raise ValueError(f"chunk: {self.chunk} can overflow int32 for int{self.bits} mantissas with "
                                 f"headroom {self.headroom}; the largest safe chunk is {self.safe_chunk}")
        if isinstance(self.keep_fp32, str):
            raise TypeError(f"keep_fp32: expected a tuple of names, got the string {self.keep_fp32!r}")
        self.keep_fp32 = tuple(self.keep_fp32)
        for k in self.keep_fp32:
            if not isinstance(k, str) or not k:
                raise ValueError(f"keep_fp32: expected {KEEP_CHOICES} or module names, got {k!r}")

    @property
    def safe_chunk(self) -> int:
        return kernel.max_safe_chunk(self.bits, self.headroom)

    @property
    def effective_chunk(self) -> int:
        return self.safe_chunk if self.chunk is None else self.chunk

    def to_dict(self) -> dict:
        d = asdict(self)
        d["keep_fp32"] = list(self.keep_fp32)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DFPConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"DFPConfig: unknown keys {sorted(unknown)}")
        return cls(**d)


class _DFPLayer:
    """What the three DFP layers share: the config, the layer's name, and the call into the op."""

    dfp_config: DFPConfig
    dfp_name: str

    def _bind(self, config: DFPConfig, name: str) -> None:
        self.dfp_config, self.dfp_name = config, name

    def _linear(self, x2d: Tensor, w2d: Tensor, bias: Tensor | None) -> Tensor:
        c = self.dfp_config
        return dfp_linear_op(x2d.float(), w2d, bias, self.dfp_name, c.bits, c.headroom, c.effective_chunk,
                             c.rounding == "stochastic")[0]

    def _dfp_repr(self) -> str:
        c = self.dfp_config
        return f"dfp=int{c.bits}, headroom={c.headroom}, chunk={c.effective_chunk}, rounding={c.rounding}"

    @classmethod
    def convert(cls, m: nn.Module, config: DFPConfig, name: str):
        new = cls.__new__(cls)
        new.__dict__.update(m.__dict__)  # the same Parameters: an optimizer built before still holds them
        new._bind(config, name)
        return new


class DFPLinear(_DFPLayer, nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        y = self._linear(x.reshape(-1, self.in_features), self.weight, self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._dfp_repr()}"


def _conv2d(layer: _DFPLayer, x: Tensor, weight: Tensor, bias, stride, padding, dilation) -> Tensor:
    kh, kw = weight.shape[2:]
    if isinstance(padding, str):  # 'valid', or 'same' (stride 1): maybe asymmetric, so padded here
        pads = []
        for k, d in ((kw, dilation[1]), (kh, dilation[0])):
            total = d * (k - 1) if padding == "same" else 0
            pads += [total // 2, total - total // 2]
        x, padding = F.pad(x, pads), (0, 0)
    c = layer.dfp_config
    return dfp_conv2d_op(x.float(), weight, bias, list(stride), list(padding), list(dilation), layer.dfp_name,
                         c.bits, c.headroom, c.effective_chunk, c.rounding == "stochastic")[0]


class DFPConv2d(_DFPLayer, nn.Conv2d):
    def forward(self, x: Tensor) -> Tensor:
        return _conv2d(self, x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._dfp_repr()}"


class DFPConv1d(_DFPLayer, nn.Conv1d):
    def forward(self, x: Tensor) -> Tensor:
        pad = self.padding if isinstance(self.padding, str) else (0, self.padding[0])
        y = _conv2d(self, x.unsqueeze(2), self.weight.unsqueeze(2), self.bias, (1, self.stride[0]), pad,
                    (1, self.dilation[0]))
        return y.squeeze(2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._dfp_repr()}"


_SWAPS = {nn.Linear: DFPLinear, nn.Conv2d: DFPConv2d, nn.Conv1d: DFPConv1d}


def _convertible(m: nn.Module) -> bool:
    if type(m) not in _SWAPS:  # exact types: subclasses (and DFP layers) may compute something else
        return False
    return isinstance(m, nn.Linear) or (m.groups == 1 and m.padding_mode == "zeros")


def _kept(model: nn.Module, keep: tuple) -> set[str]:
    names = dict(model.named_modules())
    convs = [n for n, m in names.items() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    linears = [n for n, m in names.items() if isinstance(m, nn.Linear)]
    out = set()
    for k in keep:
        if k == "first_conv":
            out.update(convs[:1])
        elif k == "last_linear":
            out.update(linears[-1:])
        elif k in names:
            out.add(k)
        else:
            raise ValueError(f"keep_fp32: {k!r} is neither one of {KEEP_CHOICES} nor a module of the model")
    return out


@register_handler(DFPConfig)
def _convert_dfp(model: nn.Module, config: DFPConfig, filter_fn: FilterFn | None):
    keep = _kept(model, config.keep_fp32)

    def predicate(m, fqn):
        return _convertible(m) and fqn not in keep and (filter_fn is None or filter_fn(m, fqn))

    swap_modules(model, predicate, lambda m, fqn: _SWAPS[type(m)].convert(m, config, fqn))
    return model


def dfp_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _DFPLayer)]
