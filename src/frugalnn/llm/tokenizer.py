"""Tokenizer of a GGUF model, built by transformers from the file's own vocabulary (offline).

Building it from the GGUF takes seconds (the vocabulary and merges are parsed in Python), so the
result is saved once under ~/.cache/frugalnn/tokenizers/ (or $FRUGALNN_CACHE_DIR, frugalnn.cachedir) keyed by the file's
path, size and modification time, and later loads read that copy with the `tokenizers` library alone
(`CachedTokenizer`): importing transformers costs ~70 MB of resident memory, more than a third of what the
whole 4-bit SmolLM2 holds, for what is a tokenizer.json and a Jinja chat template. The first build, and any
cache entry the lean reader cannot use, go through transformers.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from frugalnn import cachedir

INSTALL = "pip install 'frugalnn[llm]'  (transformers)"


def _cache_dir(gguf_path: Path) -> Path:
    root = cachedir.root()
    st = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return root / "tokenizers" / f"{gguf_path.stem}-{key}"


def load_tokenizer(gguf_path: str | Path, use_cache: bool = True):
    """A transformers tokenizer for the model in `gguf_path` (chat template included when the file has one)."""
    gguf_path = Path(gguf_path)
    cached = _cache_dir(gguf_path) if use_cache else None
    if cached is not None and (cached / "tokenizer_config.json").is_file():
        try:
            return CachedTokenizer(cached)
        except Exception:  # a damaged cache entry is rebuilt below
            pass
    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError(f"the tokenizer needs transformers; install it with: {INSTALL}") from None
    transformers.logging.set_verbosity_error()
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


class CachedTokenizer:
    """A tokenizer saved by transformers (tokenizer.json, tokenizer_config.json, chat_template.jinja), read with the
    `tokenizers` library and jinja2 only. It answers the calls frugalnn makes of a transformers tokenizer, with the
    same results (tests/llm/test_tokenizer.py compares them): __call__, encode, decode, apply_chat_template,
    chat_template, bos/eos token ids."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        template = folder / "chat_template.jinja"
        self.chat_template = template.read_text() if template.is_file() else config.get("chat_template")
        self.bos_token, self.eos_token = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
        self.bos_token_id = self._id(self.bos_token, "bos_token")
        self.eos_token_id = self._id(self.eos_token, "eos_token")
        self._template = None

    def _id(self, token: str | None, what: str) -> int | None:
        if token is None:
            return None
        i = self._tok.token_to_id(token)
        if i is None:
            raise ValueError(f"{what} {token!r} is not in the vocabulary")
        return i

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False, tokenize: bool = True):
        """The template rendered as transformers renders it (sandboxed Jinja, trim_blocks, lstrip_blocks), then
        tokenized without adding special tokens (the template writes them)."""
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template")
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_template_error
            env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
            self._template = env.from_string(self.chat_template)
        text = self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token or "", eos_token=self.eos_token or "")
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _token_text(token) -> str | None:
    """tokenizer_config.json writes a special token as a string or as {"content": ...}."""
    return token.get("content") if isinstance(token, dict) else token


def _raise_template_error(message: str):
    raise ValueError(f"chat template: {message}")


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
