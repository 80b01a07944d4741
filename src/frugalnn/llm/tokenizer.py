"""Tokenizer of a GGUF model, built by transformers from the file's own vocabulary (offline).

Building it from the GGUF takes seconds (the vocabulary and merges are parsed in Python), so the
result is saved once under ~/.cache/frugalnn/tokenizers/ (or $FRUGALNN_CACHE) keyed by the file's
path, size and modification time, and later loads read that copy.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

INSTALL = "pip install 'frugalnn[llm]'  (transformers)"


def _cache_dir(gguf_path: Path) -> Path:
    root = Path(os.environ.get("FRUGALNN_CACHE", Path.home() / ".cache" / "frugalnn"))
    st = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return root / "tokenizers" / f"{gguf_path.stem}-{key}"


def load_tokenizer(gguf_path: str | Path, use_cache: bool = True):
    """A transformers tokenizer for the model in `gguf_path` (chat template included when the file has one)."""
    gguf_path = Path(gguf_path)
    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError(f"the tokenizer needs transformers; install it with: {INSTALL}") from None
    transformers.logging.set_verbosity_error()
    cached = _cache_dir(gguf_path) if use_cache else None
    if cached is not None and (cached / "tokenizer_config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(str(cached))
        except Exception:  # a damaged cache entry is rebuilt below
            pass
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as e:
        raise ValueError(f"{gguf_path}: transformers cannot build a tokenizer from this file "
                         f"({type(e).__name__}: {e})") from None
    if cached is not None:
        try:
            cached.mkdir(parents=True, exist_ok=True)
            tok.save_pretrained(str(cached))
        except OSError:
            pass  # a read-only home only costs the rebuild next time
    return tok


def encode_prompt(tok, prompt: str | list[dict], chat: bool) -> list[int]:
    """Token ids of a prompt; with chat=True `prompt` is a user message (or a message list) in the chat template."""
    if chat:
        if getattr(tok, "chat_template", None) is None:
            raise ValueError("this model's GGUF has no chat template; run without --chat")
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return [int(i) for i in tok(prompt, add_special_tokens=True)["input_ids"]]
