"""Per-tensor DFP quantization of torch tensors for training: the numbers of `frugalnn.formats.DFP`
(one exponent from max|x|, `headroom` free bits, round half to even or stochastic), computed in
float32 torch ops so that it costs a few passes over the tensor instead of a float64 numpy round trip;
round to nearest on a contiguous tensor runs the compiled `kernels.dfp.quantize` (two passes) instead.

Exactness: x * 2^-e is exact in float32 (a power-of-two scaling of normal numbers, and anything it
would make subnormal rounds to 0 anyway), so the mantissas equal formats.DFP's (tests/dfp/test_nn.py).
Stochastic rounding splits scaled = floor + frac (both exact) and rounds up when U[0,1) < frac, so
P(up) = frac to within 2^-24: unbiased, with no float32 addition to lose the low bits.

A non-finite value is never quantized: DFPNonFiniteError names the layer, the tensor kind
(activation / weight / gradient) and the training step.
"""
from __future__ import annotations

import math
from collections import Counter

import torch

from frugalnn.kernels import dfp as kernel

KINDS = ("activation", "weight", "gradient")
_CALLS: Counter = Counter()  # forward calls per layer, for errors raised outside frugalnn.train.fit


class DFPNonFiniteError(FloatingPointError):
    """A NaN or infinity reached a DFP quantization; training stops instead of producing a NaN model."""


def count_call(layer: str) -> int:
    _CALLS[layer] += 1
    return _CALLS[layer]


def _where(layer: str) -> str:
    from frugalnn.train import current_step

    step = current_step()
    if step is not None:
        return f"training step {step}"
    return f"forward call {_CALLS[layer]} of the layer (outside frugalnn.train.fit, no step)"


def _nonfinite_error(x: torch.Tensor, layer: str, kind: str) -> DFPNonFiniteError:
    bad = ~torch.isfinite(x)
    first = tuple(int(i) for i in bad.nonzero()[0])
    return DFPNonFiniteError(
        f"DFP layer {layer!r}: non-finite {kind} entering DFP16 quantization at {_where(layer)}: "
        f"{int(bad.sum())} of {x.numel()} values are inf/NaN (first: {x[first].item()} at index {first}, "
        f"shape {tuple(x.shape)})")


def exponent_for(amax: float, bits: int, headroom: int) -> int:
    """e = floor(log2 amax) + 1 - (bits - 1 - headroom), so |x| * 2^-e < 2^(bits-1-headroom); 0 for amax = 0."""
    if amax == 0:
        return 0
    return math.frexp(amax)[1] - (bits - 1 - headroom)


def quantize(x: torch.Tensor, bits: int = 16, headroom: int = 2, stochastic: bool = False, *, layer: str = "",
             kind: str = "activation") -> tuple[torch.Tensor, int]:
    """(int16 mantissas shaped like x, exponent e) with x ~= m * 2^e; x must be float32."""
    if x.dtype != torch.float32:
        raise TypeError(f"DFP layer {layer!r}: {kind} must be float32, got {x.dtype}")
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if x.numel() == 0:
        return torch.zeros(x.shape, dtype=torch.int16), 0
    if not stochastic and bits == 16 and x.is_contiguous():
        # the compiled twin of DFP.from_float (kernels.dfp.quantize): two parallel passes straight
        # into int16, instead of aminmax + scale + round + cast in torch (five passes, two float
        # temporaries); bit for bit the same numbers (tests/dfp/test_nn.py)
        try:
            d = kernel.quantize(x.detach(), bits, headroom, threads=torch.get_num_threads())
        except ValueError:
            raise _nonfinite_error(x, layer, kind) from None
        return torch.from_numpy(d.mantissa), int(d.exponent[0])
    lo, hi = torch.aminmax(x)  # one pass, no |x| temporary; NaN and inf propagate: one check for both
    amax = max(-float(lo), float(hi))
    if not math.isfinite(amax) or math.isnan(float(lo)):
        raise _nonfinite_error(x, layer, kind)
    e = exponent_for(amax, bits, headroom)
    if e >= -127:
        scaled = x * (2.0 ** -e)
    else:  # 2^-e is not a float32 (amax < 2^-114): scale in float64, the result is < 2^13 again
        scaled = (x.double() * (2.0 ** -e)).float()
    if stochastic:
        low = torch.floor(scaled)
        scaled = low.add_((torch.rand_like(scaled) < (scaled - low)).to(scaled.dtype))
    else:
        scaled = scaled.round_()  # half to even, like np.rint
    if headroom == 0:  # only then can a value round up to 2^(bits-1), one past the int range
        top = 2 ** (bits - 1) - 1
        scaled = scaled.clamp_(-top, top)
    return scaled.to(torch.int16), e


def dequantize(m: torch.Tensor, e: int) -> torch.Tensor:
    return torch.ldexp(m.to(torch.float32), torch.tensor(e, dtype=torch.int32))
