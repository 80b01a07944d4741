"""L-Mul on our own Llama (a tiny random GGUF): grouped-query attention through SDPA in prefill, prefill
after a cached prefix (boolean mask) and one-token decode steps, and scope="all" on the model's own Linear."""
import pytest
import torch
from tiny_gguf import write_tiny_llama
from torch.utils.flop_counter import FlopCounterMode

from frugalnn import convert_
from frugalnn import llm as llama
from frugalnn.lmul.nn import LMulConfig, LMulLinear


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("lmul") / "t.gguf", n_heads=4, n_kv_heads=2)


TOKENS = torch.tensor([[3, 17, 99, 5, 64, 2, 7, 11]])


def test_attention_on_lmul_covers_prefill_masked_prefill_and_decode(tiny):
    model = llama.load(tiny)
    exact = model(TOKENS)
    convert_(model, LMulConfig(mantissa_bits=3))
    full = model(TOKENS)
    assert (full - exact).abs().max() > 1e-4  # attention really runs on L-Mul products
    model.setup_cache(16)
    steps = [model(TOKENS[:, :3], start=0), model(TOKENS[:, 3:5], start=3)]   # is_causal, then a bool mask
    steps += [model(TOKENS[:, i:i + 1], start=i) for i in range(5, 8)]        # GQA decode, no mask
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert (steps[-1] - exact[:, -1:]).abs().max() > 1e-4


def test_scope_all_swaps_the_models_own_linear_layers(tiny):
    model = llama.load(tiny)
    convert_(model, LMulConfig(mantissa_bits=4, scope="all"))
    assert isinstance(model.output, LMulLinear) and isinstance(model.layers[0].mlp.down, LMulLinear)
    with FlopCounterMode(display=False) as counter:
        out = model(TOKENS)
    assert torch.isfinite(out).all()
    counts = counter.get_flop_counts()["Global"]
    assert sum(counts.values()) == counts[torch.ops.frugalnn.lmul_matmul]  # no float32 matmul left


def test_lookup_table_weights_are_refused(tmp_path):
    path = write_tiny_llama(tmp_path / "q.gguf", qtype="Q4_0", dim=128, ffn=256, tied=False)
    with pytest.raises(ValueError, match="no dense float weight"):
        convert_(llama.load(path, bits=4), LMulConfig(scope="all"))
