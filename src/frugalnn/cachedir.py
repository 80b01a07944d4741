"""Where frugalnn keeps what it can rebuild: tuned tile choices, trained weights, converted tokenizers, the race
files, quantized models, synthesized speech.

    root()   $FRUGALNN_CACHE_DIR, else $FRUGALNN_CACHE (the name two modules read before), else
             $XDG_CACHE_HOME/frugalnn, else ~/.cache/frugalnn

One function, so every cache honours the same variables (they had drifted: some modules read FRUGALNN_CACHE,
others FRUGALNN_CACHE_DIR, some XDG_CACHE_HOME). Nothing is created here; each user makes its own subfolder.
"""
from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    explicit = os.environ.get("FRUGALNN_CACHE_DIR") or os.environ.get("FRUGALNN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frugalnn"
