"""The compiled one-token decoder (models/llama/fast.py, csrc/llama/) against the torch model it
stands in for, and the rules for falling back to the torch path.

Tolerances, stated:
  - float32 weights: logits within 2e-6 of the largest |logit| (float32 summation order in the
    norms, GEMVs and attention; measured ~1e-7 relative on the tiny models, 1e-6 on SmolLM2).
  - LUT weights: the T-MAC kernel quantizes each activation vector into int8 tables, so a 1-ulp
    change in a GEMV's input can flip one table entry's rounding and move its outputs by a
    table step; 30 layers amplify that. The torch path moves by the same amount when its input
    embedding is nudged by 1 ulp (measured on SmolLM2 4-bit: 0.67% relative L2 both ways), and the
    test checks the fast path stays within twice that floor; on the tiny 2-layer models the paths
    agree to ~1e-7 relative except when a flip happens (3.5e-3 seen): bound 1e-2.
  - greedy tokens identical in every case.
"""
import pytest
import torch
import torch.nn.functional as F

from frugalnn import convert_
from frugalnn import llm as llama
from tiny_gguf import write_tiny_llama

TOKENS = torch.tensor([[3, 17, 99, 5, 64, 2, 7, 11, 12, 13]])


def decode(model, tokens=TOKENS, prefill=3, fast=True):
    """Prefill `prefill` tokens (torch path), then one decode step per token; logits [1, T, vocab]."""
    model.fast_decode = fast
    model.setup_cache(tokens.shape[1] + 4)
    steps = [model(tokens[:, :prefill], start=0)]
    steps += [model(tokens[:, i:i + 1], start=i) for i in range(prefill, tokens.shape[1])]
    model.fast_decode = True
    return torch.cat(steps, 1)


def assert_float_close(fast, ref):
    assert (fast - ref).abs().max() <= 2e-6 * ref.abs().max()
    assert torch.equal(fast.argmax(-1), ref.argmax(-1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("fast") / "t.gguf", n_heads=4, n_kv_heads=2)


@pytest.mark.parametrize("heads,kv,tied,rope_dim,qtype", [
    (4, 2, True, None, "F32"), (4, 4, True, None, "F32"), (4, 1, False, None, "F32"),
    (4, 2, True, 8, "F32"), (4, 2, False, None, "Q8_0")])
def test_float_weights_match_torch_path(tmp_path, backend, heads, kv, tied, rope_dim, qtype):
    path = write_tiny_llama(tmp_path / "t.gguf", n_heads=heads, n_kv_heads=kv, tied=tied, rope_dim=rope_dim,
                            qtype=qtype)
    model = llama.load(path)
    model.setup_cache(16)
    assert model.fast_decode_reason() == ""
    fast, ref = decode(model), decode(model, fast=False)
    assert_float_close(fast, ref)
    assert torch.allclose(fast, model(TOKENS), atol=1e-5)  # and the cache-free full pass
    # the cache the fast path wrote is the one the torch path reads: mix the two freely
    model.setup_cache(16)
    model(TOKENS[:, :4], start=0)
    model(TOKENS[:, 4:5], start=4)                      # fast
    mixed = model(TOKENS[:, 5:8], start=5)              # torch prefill on top of it
    assert torch.allclose(mixed, ref[:, 5:8], atol=1e-5)


@pytest.mark.parametrize("bits", ["4", "3", "2", "ternary"])
def test_lut_weights_match_torch_path(tmp_path, backend, bits):
    path = write_tiny_llama(tmp_path / "q4.gguf", qtype="Q4_0", dim=128, ffn=256, tied=False)
    model = llama.load(path, bits=bits)
    model.setup_cache(16)
    assert model.fast_decode_reason() == ""
    if bits == "ternary":  # re-quantized per tensor: q/k/v and gate/up stay separate parts
        assert type(model.layers[0].attention.wqkv).__name__ == "StackedLinear"
    fast, ref = decode(model), decode(model, fast=False)
    assert (fast - ref).norm() <= 1e-2 * ref.norm()
    assert torch.equal(fast.argmax(-1), ref.argmax(-1))


def test_generation_is_identical(tiny):
    model = llama.load(tiny)
    ids_fast, st = llama.generate(model, [1, 2, 3], 12)
    model.fast_decode = False
    ids_torch, _ = llama.generate(model, [1, 2, 3], 12)
    assert ids_fast == ids_torch and st.decode_steps == 11


def _counting_sdpa(calls):
    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        calls.append(tuple(q.shape))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale, **kw)
    return sdpa


def test_rerouted_attention_falls_back_to_torch(tiny):
    from frugalnn.routing import route_

    model = llama.load(tiny)
    ref = decode(model)
    calls = []
    route_(model, {F.scaled_dot_product_attention: _counting_sdpa(calls)}, "count")
    assert "RoutedModule" in model.fast_decode_reason()
    out = decode(model)
    assert len(calls) == 2 * 8  # the prefill and all 7 decode steps, both layers, went through the route
    assert_float_close(out, ref)


@pytest.mark.parametrize("make", ["lmul", "fused"])
def test_converted_models_fall_back(tiny, make):
    model = llama.load(tiny)
    exact = decode(model)
    if make == "lmul":
        from frugalnn.lmul.nn import LMulConfig
        convert_(model, LMulConfig(mantissa_bits=3))
    else:
        from frugalnn.fusemax.nn import FusedAttentionConfig
        convert_(model, FusedAttentionConfig(unsupported="fallback"))
    assert model.fast_decode_reason() != ""
    steps = decode(model)
    full = model(TOKENS)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)  # decode steps ran the converted attention
    if make == "lmul":
        assert (steps[:, -1] - exact[:, -1]).abs().max() > 1e-4


def test_lmul_linear_swap_falls_back(tiny):
    from frugalnn.lmul.nn import LMulConfig

    model = llama.load(tiny)
    convert_(model, LMulConfig(mantissa_bits=4, scope="all"))
    model.setup_cache(16)
    assert "LMulLinear" in model.fast_decode_reason() or "RoutedModule" in model.fast_decode_reason()
    torch.testing.assert_close(decode(model), model(TOKENS), rtol=1e-5, atol=1e-5)


def test_hooks_modes_and_switch_fall_back(tiny):
    from torch.utils.flop_counter import FlopCounterMode

    model = llama.load(tiny)
    ref = decode(model)
    seen = []
    # on attention: the torch path calls it through __call__ (leaf modules go through .forward, no hooks)
    handle = model.layers[1].attention.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert "hooks" in model.fast_decode_reason()
    assert_float_close(decode(model), ref)
    assert len(seen) == 8  # prefill + 7 decode steps
    handle.remove()
    model.fast_decode = True  # any assignment re-evaluates the plan
    assert model.fast_decode_reason() == ""
    with FlopCounterMode(display=False) as counter:
        model.setup_cache(16)
        model(TOKENS[:, :1], start=0)
        model(TOKENS[:, 1:2], start=1)
    assert sum(counter.get_flop_counts()["Global"].values()) > 0  # the decode step was visible to the mode
    model.fast_decode = False
    assert model.fast_decode_reason() == "fast_decode is off"
    model.drop_cache()
    model.fast_decode = True
    assert "no KV cache" in model.fast_decode_reason()


def test_swapped_linear_and_set_threads_rebuild(tiny):
    model = llama.load(tiny)
    ref = decode(model)
    model.set_threads(2)
    assert_float_close(decode(model), ref)
    w = model.layers[0].mlp.down.weight
    model.layers[0].mlp.down = llama.Linear(torch.zeros_like(w))
    zeroed = decode(model)
    model.fast_decode = False
    assert_float_close(zeroed, decode(model, fast=False))  # the new weight is used by both paths
    assert (zeroed - ref).abs().max() > 1e-3


def test_profile_counts_kernel_time_on_the_fast_path(tiny):
    model = llama.load(tiny)
    session = llama.Session(model)
    out, st = session.generate([1, 2, 3], 8, profile=True)
    assert model.fast_decode_reason() == ""
    assert st.linear_s is not None and 0 < st.linear_s < st.decode_s
    again, st2 = llama.Session(model).generate([1, 2, 3], 8)
    assert again == out and st2.linear_s is None


def test_bad_input_matches_torch_path(tiny):
    model = llama.load(tiny)
    model.setup_cache(8)
    for fast in (True, False):
        model.fast_decode = fast
        with pytest.raises(IndexError):
            model(torch.tensor([[128]]), start=0)
        with pytest.raises(IndexError):
            model(torch.tensor([[-1]]), start=0)
        with pytest.raises(ValueError, match="setup_cache"):
            model(torch.tensor([[1]]), start=8)
        with pytest.raises((RuntimeError, TypeError, IndexError)):
            model(torch.tensor([[1.0]]), start=0)


def test_decoder_binding_checks_its_arguments(tiny):
    import numpy as np

    from frugalnn._core import llama as core

    model = llama.load(tiny)
    model.setup_cache(8)
    model(TOKENS[:, :1], start=0)
    model(TOKENS[:, 1:2], start=1)
    dec = model.__dict__["_fast"].decoder
    with pytest.raises(ValueError, match="logits"):
        dec.step(1, 2, np.empty(7, np.float32))
    with pytest.raises(ValueError, match="pos"):
        dec.step(1, 8, np.empty(128, np.float32))
    with pytest.raises(ValueError, match="already finished"):
        dec.add_dense(0, "o", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="k_cache"):
        dec.set_cache(np.zeros((2, 1, 2, 8, 15), np.float32), np.zeros((2, 1, 2, 8, 15), np.float32))
    c = model.config
    fresh = core.Decoder(c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dim, c.ffn_dim,
                         c.vocab_size, 64, 1e-5, model.embedding.weight.numpy(),
                         torch.view_as_real(model.rope[:, 0]).numpy(), model.norm.weight.numpy())
    with pytest.raises(ValueError, match="finish"):
        fresh.step(1, 0, np.empty(128, np.float32))
    with pytest.raises(ValueError, match="slot"):
        fresh.add_dense(0, "nope", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match=f"w: expected size {c.ffn_dim} on axis 1"):  # down reads ffn inputs
        fresh.add_dense(0, "down", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="norms: not set"):
        fresh.finish()
    with pytest.raises(ValueError, match="rope"):
        core.Decoder(c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dim, c.ffn_dim, c.vocab_size,
                     65, 1e-5, model.embedding.weight.numpy(), torch.view_as_real(model.rope[:, 0]).numpy(),
                     model.norm.weight.numpy())


# ---- the real model -------------------------------------------------------------------------------

def test_smollm2_fp32_matches_torch_path(smollm2_fp32, smollm2_tokenizer):
    ids = torch.tensor([llama.encode_prompt(smollm2_tokenizer, "The capital of Japan is Tokyo, and the", chat=False)])
    try:
        fast, ref = decode(smollm2_fp32, ids, prefill=4), decode(smollm2_fp32, ids, prefill=4, fast=False)
    finally:
        smollm2_fp32.drop_cache()
    assert_float_close(fast, ref)


@pytest.fixture(scope="module")
def smollm2_q4(smollm2_path):
    pytest.importorskip("frugalnn.tmac")
    return llama.load(smollm2_path, bits="4", threads=1)


def test_smollm2_lut_matches_torch_path_within_its_noise_floor(smollm2_q4, smollm2_tokenizer):
    model = smollm2_q4
    prompt = llama.encode_prompt(smollm2_tokenizer, "The capital of Japan is", chat=True)
    ids = torch.tensor([prompt])
    fast, ref = decode(model, ids, prefill=len(prompt) - 6), decode(model, ids, prefill=len(prompt) - 6, fast=False)
    # the torch path against itself with its input embedding nudged by 1 ulp: the LUT path's noise floor
    w = model.embedding.weight
    row = w[prompt[-1]].clone()
    w[prompt[-1]] = torch.nextafter(row, torch.full_like(row, float("inf")))
    try:
        nudged = decode(model, ids, prefill=len(prompt) - 6, fast=False)
    finally:
        w[prompt[-1]] = row
    floor = float((nudged[:, -1] - ref[:, -1]).norm() / ref[:, -1].norm())
    err = float((fast[:, -1] - ref[:, -1]).norm() / ref[:, -1].norm())
    assert 0 < floor < 0.02 and err <= 2 * floor
    assert (fast - ref).norm() <= 0.02 * ref.norm()
    assert torch.equal(fast.argmax(-1), ref.argmax(-1))
    # greedy generation: the same 16 tokens, Tokyo among them
    gen_fast, st = llama.generate(model, prompt, 16)
    model.fast_decode = False
    try:
        gen_torch, _ = llama.generate(model, prompt, 16)
    finally:
        model.fast_decode = True
    assert gen_fast == gen_torch
    assert "Tokyo" in smollm2_tokenizer.decode(gen_fast)
