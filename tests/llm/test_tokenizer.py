"""The lean tokenizer read from the cache (tokenizers + jinja2) gives what transformers gives on the same files."""
import pytest

from frugalnn import llm as llama
from frugalnn.llm.tokenizer import CachedTokenizer, _cache_dir, encode_prompt

TEXTS = ["Hello, world!", "  leading spaces and\ttabs\nnew lines", "emoji 🙂 and accents: déjà vu", "",
         "<|im_start|>user\nliteral special tokens<|im_end|>", "1234567890 " * 20]
CHATS = [[{"role": "user", "content": "Write a haiku about the sea."}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Again 🙂"}]]


@pytest.fixture(scope="module")
def pair(smollm2_path, tmp_path_factory):
    import os

    from transformers import AutoTokenizer

    os.environ["FRUGALNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        built = llama.load_tokenizer(smollm2_path)  # the first load builds the cache through transformers
        lean = llama.load_tokenizer(smollm2_path)   # the second reads it without transformers
        reference = AutoTokenizer.from_pretrained(str(_cache_dir(smollm2_path)))
    finally:
        del os.environ["FRUGALNN_CACHE"]
    assert not isinstance(built, CachedTokenizer) and isinstance(lean, CachedTokenizer)
    return lean, reference


def test_lean_tokenizer_matches_transformers(pair):
    lean, ref = pair
    assert (lean.eos_token_id, lean.bos_token_id) == (ref.eos_token_id, ref.bos_token_id)
    assert lean.chat_template == ref.chat_template
    for text in TEXTS:
        for special in (True, False):
            ids = ref(text, add_special_tokens=special)["input_ids"]
            assert lean(text, add_special_tokens=special)["input_ids"] == ids
        ids = ref(text)["input_ids"]
        for skip in (True, False):
            assert lean.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    for chat in CHATS:
        for gen in (True, False):
            want = ref.apply_chat_template(chat, add_generation_prompt=gen, tokenize=False)
            assert lean.apply_chat_template(chat, add_generation_prompt=gen, tokenize=False) == want
        assert encode_prompt(lean, chat, chat=True) == encode_prompt(ref, chat, chat=True)
    assert encode_prompt(lean, "plain", chat=False) == encode_prompt(ref, "plain", chat=False)


def test_damaged_cache_is_rebuilt(smollm2_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE", str(tmp_path))
    llama.load_tokenizer(smollm2_path)
    (_cache_dir(smollm2_path) / "tokenizer.json").write_text("{not json")
    tok = llama.load_tokenizer(smollm2_path)  # rebuilt through transformers, and saved again
    assert tok("Hello")["input_ids"]
    assert isinstance(llama.load_tokenizer(smollm2_path), CachedTokenizer)
