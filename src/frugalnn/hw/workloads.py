"""GEMM workloads generated from model configurations (not typed in): the linear layers of a ViT
or a decoder-only LLM as (name, M, N, K, count) with M = tokens x batch.

The MixPE evaluation (ViT-B, ViT-H, OPT-6.7B, Llama2-13B, batch 64) runs the weight GEMMs: the
layers whose weights are quantized. Attention score/value products (activation x activation) are
left out, as in the authors' OPT/Llama benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gemm:
    name: str
    m: int      # rows of activations (tokens x batch)
    n: int      # output features
    k: int      # input features
    count: int  # how many such GEMMs (layers)

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count


@dataclass(frozen=True)
class ViTConfig:
    hidden: int
    layers: int
    mlp: int
    patch: int
    image: int = 224
    classes: int = 1000

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2 + 1


@dataclass(frozen=True)
class LLMConfig:
    hidden: int
    layers: int
    ffn: int
    gated: bool            # SwiGLU (gate + up) or a plain two-layer MLP
    kv_hidden: int | None = None


# Published configurations: ViT-B/16 and ViT-H/14 (Dosovitskiy et al. 2021, Table 1), OPT-6.7B
# (Zhang et al. 2022, Table 1), Llama 2 13B (Touvron et al. 2023; HF config: 5120 / 40 / 13824).
MODELS = {
    "ViT-B": ViTConfig(hidden=768, layers=12, mlp=3072, patch=16),
    "ViT-H": ViTConfig(hidden=1280, layers=32, mlp=5120, patch=14),
    "OPT-6.7B": LLMConfig(hidden=4096, layers=32, ffn=16384, gated=False),
    "Llama2-13B": LLMConfig(hidden=5120, layers=40, ffn=13824, gated=True),
}


def vit_gemms(c: ViTConfig, batch: int) -> list[Gemm]:
    t = c.tokens * batch
    h = c.hidden
    return [Gemm("patch embed", (c.tokens - 1) * batch, h, 3 * c.patch * c.patch, 1),
            Gemm("qkv", t, 3 * h, h, c.layers), Gemm("proj", t, h, h, c.layers),
            Gemm("fc1", t, c.mlp, h, c.layers), Gemm("fc2", t, h, c.mlp, c.layers),
            Gemm("head", batch, c.classes, h, 1)]


def llm_gemms(c: LLMConfig, batch: int, tokens: int = 1) -> list[Gemm]:
    """One decode step (tokens=1 per sequence, as the authors' OPT/Llama benchmarks) of `batch` sequences."""
    t = tokens * batch
    h, kv = c.hidden, c.kv_hidden or c.hidden
    g = [Gemm("qkv", t, h + 2 * kv, h, c.layers), Gemm("o", t, h, h, c.layers)]
    if c.gated:
        g += [Gemm("gate+up", t, 2 * c.ffn, h, c.layers), Gemm("down", t, h, c.ffn, c.layers)]
    else:
        g += [Gemm("fc1", t, c.ffn, h, c.layers), Gemm("fc2", t, h, c.ffn, c.layers)]
    return g


def workload(name: str, batch: int = 64, tokens: int = 1) -> list[Gemm]:
    if name not in MODELS:
        raise ValueError(f"workload: expected one of {tuple(MODELS)}, got {name!r}")
    c = MODELS[name]
    return vit_gemms(c, batch) if isinstance(c, ViTConfig) else llm_gemms(c, batch, tokens)
