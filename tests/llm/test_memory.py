"""Issue 18's memory half: a low-bit model keeps its embedding as stored (rows dequantized on demand, fed to the
compiled decoder through step_row), and a Session's KV cache grows with the conversation instead of being
allocated for the whole context up front. Both must leave every result as it was."""
import gguf
import numpy as np
import pytest
import torch

from frugalnn import llm as llama
from frugalnn.llm.layers import Embedding, StoredEmbedding
from tiny_gguf import write_tiny_llama


@pytest.fixture(scope="module")
def q8(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("mem") / "q8.gguf", qtype="Q8_0", ctx=512)


def test_low_bit_embedding_stays_as_stored(q8):
    model = llama.load(q8, bits=4)
    emb = model.embedding
    assert isinstance(emb, StoredEmbedding) and emb.tensor.tensor_type.name == "Q8_0"
    f = llama.GGUFModelFile(q8)
    ref = gguf.quants.dequantize(f.tensor("token_embd.weight").data, f.tensor("token_embd.weight").tensor_type)
    ids = torch.tensor([[0, 5, 127, 5]])
    assert torch.equal(emb(ids)[0], torch.from_numpy(ref[[0, 5, 127, 5]].astype(np.float32)))
    assert torch.equal(emb.weight, torch.from_numpy(ref.astype(np.float32)))
    with pytest.raises(IndexError, match="128"):
        emb(torch.tensor([[128]]))
    # no float32 copy of the table anywhere in the model
    c = model.config
    assert all(t.numel() < c.vocab_size * c.dim for t in [*model.parameters(), *model.buffers()]
               if t.dtype == torch.float32)
    assert llama.load(q8, bits="fp32").embedding.__class__ is Embedding


def test_step_row_gives_the_same_logits_as_the_table(q8, backend):
    model = llama.load(q8, bits=4)
    model.setup_cache(16)
    assert model.fast_decode_reason() == ""
    tokens = [3, 17, 99, 5, 64, 2]
    stored = [model(torch.tensor([[t]]), start=i) for i, t in enumerate(tokens)]
    model.embedding = Embedding.from_pretrained(model.embedding.weight, freeze=True)  # a float32 table instead
    model.setup_cache(16)
    assert model.fast_decode_reason() == ""
    table = [model(torch.tensor([[t]]), start=i) for i, t in enumerate(tokens)]
    for a, b in zip(stored, table):
        assert torch.equal(a, b)


def test_cache_grows_and_keeps_what_it_holds(q8, monkeypatch):
    model = llama.load(q8, bits=4)
    monkeypatch.setattr(llama.Session, "FIRST_CACHE", 8)
    grown = llama.Session(model)
    assert model.cache_len == 0  # nothing allocated until a call says how much it needs
    out1, _ = grown.generate([1, 2, 3], 6)
    assert model.cache_len == 9
    out2, st = grown.generate([1, 2, 3] + out1 + [7, 8], 20)  # grows to 31 (more than double): prefix kept
    assert st.reused_tokens == 8 and model.cache_len == 31  # 3 + 5 decoded tokens held
    out3, st3 = grown.generate([1, 2, 3] + out1 + [7, 8] + out2 + [9], 4)  # doubles to 62
    assert st3.reused_tokens == 30 and model.cache_len == 62

    fresh = llama.load(q8, bits=4)
    fresh.setup_cache(512)  # the whole context up front, as before
    whole = llama.Session(fresh)
    assert whole.generate([1, 2, 3], 6)[0] == out1
    assert whole.generate([1, 2, 3] + out1 + [7, 8], 20)[0] == out2
    assert whole.generate([1, 2, 3] + out1 + [7, 8] + out2 + [9], 4)[0] == out3


def test_session_stops_at_its_own_context(q8):
    model = llama.load(q8, bits=4)
    session = llama.Session(model, max_len=12)
    out, st = session.generate([1, 2, 3, 4, 5], 50)
    assert st.stop == "context" and len(session.tokens) == 12 and model.cache_len == 12
    with pytest.raises(ValueError, match="max_len"):
        llama.Session(model, max_len=513)


def test_non_finite_stored_embedding_is_refused_at_load(tmp_path):
    path = write_tiny_llama(tmp_path / "e.gguf", qtype="Q8_0")
    offset = {t.name: t.data_offset for t in gguf.GGUFReader(str(path)).tensors}["token_embd.weight"]
    with open(path, "r+b") as f:
        f.seek(offset + 3 * 34)  # block 3's fp16 scale
        f.write(np.float16(np.inf).tobytes())
    with pytest.raises(ValueError, match=r"token_embd\.weight.*block 3 of Q8_0"):
        llama.load(path, bits=4)
