"""Our own model definitions (no torchvision / hub code): one module per family.

Built-in names for the scaling study and `frugalnn profile`: `config(name)` returns a config
dataclass (`.build()`, `.example_input()`, `.complexity()`), `build(name)` the model and an input.
"""
from __future__ import annotations


def _families():
    from frugalnn.models import effnet, regnet

    return {**{n: regnet.regnet_config for n in regnet.PRESETS}, **{n: effnet.effnet_config for n in effnet.PRESETS}}


def names() -> list[str]:
    return sorted(_families())


def config(name: str, **overrides):
    """Config of a built-in model ('regnety-400mf', 'effnet-b0', ...); overrides are config fields."""
    families = _families()
    if name not in families:
        raise ValueError(f"unknown model {name!r}; built-in models: {', '.join(sorted(families))}")
    return families[name](name, **overrides)


def build(name: str, batch: int = 1, **overrides):
    """(model in eval mode, example input of `batch` images) for a built-in model name."""
    cfg = config(name, **overrides)
    return cfg.build().eval(), cfg.example_input(batch)


__all__ = ["build", "config", "names"]
