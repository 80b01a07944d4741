"""Our Llama on SmolLM2-135M-Instruct against transformers' LlamaForCausalLM on the same GGUF (fp32 oracle)."""
import torch
import torch.nn.functional as F

from frugalnn import llm as llama

PROMPT = "The capital of Japan is Tokyo, and the capital of France is"


def _oracle_logits(oracle, ids):
    with torch.no_grad():
        return oracle(ids).logits


def test_logits_match_oracle(smollm2_fp32, smollm2_tokenizer, oracle):
    ids = torch.tensor([llama.encode_prompt(smollm2_tokenizer, PROMPT, chat=False)])
    ours, theirs = smollm2_fp32(ids), _oracle_logits(oracle, ids)
    assert ours.shape == theirs.shape == (1, ids.shape[1], 49152)
    # same weights, same arithmetic up to summation order: float32 noise only
    assert (ours - theirs).abs().max() < 2e-3 * theirs.abs().max()
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


def test_greedy_tokens_agree_with_oracle(smollm2_fp32, smollm2_tokenizer, oracle):
    ids = llama.encode_prompt(smollm2_tokenizer, "The capital of Japan is", chat=True)
    ours, stats = llama.generate(smollm2_fp32, ids, max_new_tokens=8)
    theirs = oracle.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids):].tolist()
    assert ours == theirs[:len(ours)] and len(ours) >= 3
    assert "Tokyo" in smollm2_tokenizer.decode(ours)
    assert stats.prompt_tokens == len(ids) and stats.decode_steps == len(ours) - 1


def test_cached_decode_equals_full_pass(smollm2_fp32, smollm2_tokenizer):
    ids = torch.tensor([llama.encode_prompt(smollm2_tokenizer, PROMPT, chat=False)])
    full = smollm2_fp32(ids)
    model = smollm2_fp32
    model.setup_cache(32)
    try:
        parts = [model(ids[:, :4], start=0), model(ids[:, 4:7], start=4)]  # prefill, then prefill on top of a cache
        parts += [model(ids[:, i:i + 1], start=i) for i in range(7, ids.shape[1])]  # decode steps
    finally:
        model.drop_cache()
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-3, rtol=0)


def test_perplexity_matches_oracle(smollm2_fp32, smollm2_tokenizer, oracle):
    ids = llama.reference_tokens(smollm2_tokenizer, n_tokens=192)
    ours = llama.perplexity(lambda x: smollm2_fp32(x), ids, window=96)
    theirs = llama.perplexity(lambda x: _oracle_logits(oracle, x), ids, window=96)
    assert ours.scored_tokens == theirs.scored_tokens == 190
    assert abs(ours.perplexity / theirs.perplexity - 1) < 1e-4
    assert 2 < ours.perplexity < 100  # a working model on English prose, not a broken one (vocab 49152)


def test_attention_routing_reaches_decode_steps(smollm2_path, smollm2_tokenizer):
    from frugalnn.routing import route_

    model = llama.load(smollm2_path)
    ids = llama.encode_prompt(smollm2_tokenizer, "The capital of Japan is", chat=False)
    base, _ = llama.generate(model, ids, max_new_tokens=4)
    calls = []

    def counting_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        calls.append((tuple(q.shape), tuple(k.shape)))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale, **kw)

    assert route_(model, {F.scaled_dot_product_attention: counting_sdpa}, "count") == 30
    routed, _ = llama.generate(model, ids, max_new_tokens=4)
    assert routed == base
    decode_calls = [c for c in calls if c[0][2] != len(ids)]
    assert len(calls) == 30 * 4 and len(decode_calls) == 30 * 3  # prefill + 3 decode steps, every layer
    assert all(q[1] == 3 and q[2] == 3 for q, _ in decode_calls)  # [B, Hkv=3, G=3, D]: one kv head's queries
