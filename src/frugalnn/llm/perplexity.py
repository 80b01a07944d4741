"""Perplexity on a fixed English text that ships with every Python: the prose of CPython's
`pydoc_data/topics.py` (the language reference's "Execution model" section followed by "The
standard type hierarchy").

The text is `topics["execmodel"] + "\\n\\n" + topics["types"]`, tokenized without special tokens,
cut to the first `n_tokens` tokens (4096; 1024 with quick=True) and scored in independent windows
of `window` tokens (512): every token of a window except its first is predicted from the ones
before it in the same window. The text differs slightly between Python versions, so results carry
the Python version and a SHA-256 of the text; compare numbers only when those match.
"""
from __future__ import annotations

import hashlib
import math
import platform
from dataclasses import dataclass
from typing import Callable

import torch

TOPICS = ("execmodel", "types")
N_TOKENS = 4096
N_TOKENS_QUICK = 1024
WINDOW = 512


def reference_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in TOPICS)


@dataclass
class PerplexityResult:
    perplexity: float
    mean_nll: float
    scored_tokens: int
    windows: int
    window: int
    text_sha256: str
    python: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def reference_tokens(tokenizer, quick: bool = False, n_tokens: int | None = None) -> list[int]:
    n = n_tokens or (N_TOKENS_QUICK if quick else N_TOKENS)
    ids = tokenizer(reference_text(), add_special_tokens=False)["input_ids"]
    if len(ids) < n:
        raise ValueError(f"the reference text has only {len(ids)} tokens with this tokenizer, {n} requested")
    return [int(i) for i in ids[:n]]


def perplexity(logits_fn: Callable[[torch.Tensor], torch.Tensor], token_ids: list[int], window: int = WINDOW,
               progress: Callable[[int, int], None] | None = None) -> PerplexityResult:
    """exp(mean negative log-likelihood) of `token_ids` in windows; logits_fn maps ids [1, T] -> logits [1, T, V]."""
    if window < 2:
        raise ValueError(f"window: expected >= 2, got {window}")
    if len(token_ids) < 2:
        raise ValueError("perplexity needs at least 2 tokens")
    total, count, windows = 0.0, 0, 0
    chunks = [token_ids[i:i + window] for i in range(0, len(token_ids), window)]
    chunks = [c for c in chunks if len(c) >= 2]
    for i, chunk in enumerate(chunks):
        ids = torch.tensor([chunk])
        with torch.inference_mode():
            logits = logits_fn(ids)[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
        total += float(nll)
        count += len(chunk) - 1
        windows += 1
        if progress is not None:
            progress(i + 1, len(chunks))
    mean = total / count
    text = reference_text()
    return PerplexityResult(math.exp(mean), mean, count, windows, window,
                            hashlib.sha256(text.encode()).hexdigest()[:16], platform.python_version())


def model_perplexity(model, tokenizer, quick: bool = False, window: int = WINDOW, progress=None) -> PerplexityResult:
    """Perplexity of our Llama on the reference text (the KV cache is not used: full causal passes)."""
    return perplexity(lambda ids: model(ids), reference_tokens(tokenizer, quick), window, progress)
