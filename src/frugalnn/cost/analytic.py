"""Closed-form complexity, pycls style: walk a network's layers and add up MACs, params and acts.

A model family writes `complexity(config)` with these helpers, layer by layer, mirroring its
forward. The conventions are `profile`'s (so the two must agree exactly, and the tests hold them
to it): MACs of conv and linear only (bias adds are free; pycls adds w_out per biased layer, which
we do not), params include norm affine and biases, acts are conv/linear output elements.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Complexity:
    macs: int
    params: int
    acts: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def ratio(self, base: "Complexity") -> "tuple[float, float, float]":
        """(macs, params, acts) of self relative to base."""
        return self.macs / base.macs, self.params / base.params, self.acts / base.acts


def conv_out(size: int, k: int, stride: int = 1, padding: int | None = None, dilation: int = 1) -> int:
    """Output length of a convolution (padding defaults to 'same' for odd k: dilation * (k - 1) // 2)."""
    if padding is None:
        padding = dilation * (k - 1) // 2
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


class Cx:
    """Running complexity of a forward pass over a feature map of height h and width w (batch 1)."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.macs = self.params = self.acts = 0

    def conv2d(self, w_in: int, w_out: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False,
               padding: int | None = None, dilation: int = 1) -> "Cx":
        if w_in % groups or w_out % groups:
            raise ValueError(f"conv2d: channels {w_in}->{w_out} are not divisible by groups={groups}")
        self.h = conv_out(self.h, k, stride, padding, dilation)
        self.w = conv_out(self.w, k, stride, padding, dilation)
        weights = k * k * (w_in // groups) * w_out
        self.macs += weights * self.h * self.w
        self.params += weights + (w_out if bias else 0)
        self.acts += w_out * self.h * self.w
        return self

    def norm2d(self, channels: int) -> "Cx":
        self.params += 2 * channels
        return self

    def pool_global(self) -> "Cx":
        self.h = self.w = 1
        return self

    def linear(self, w_in: int, w_out: int, bias: bool = True) -> "Cx":
        positions = self.h * self.w
        self.macs += w_in * w_out * positions
        self.params += w_in * w_out + (w_out if bias else 0)
        self.acts += w_out * positions
        return self

    @contextmanager
    def branch(self):
        """A side path (projection shortcut, squeeze-excitation) that must not move the main path's h, w."""
        h, w = self.h, self.w
        yield self
        self.h, self.w = h, w

    def result(self) -> Complexity:
        return Complexity(self.macs, self.params, self.acts)
