"""Fast checks of frugalnn.llm on tiny GGUF files written here (no real model needed)."""
import pytest
import torch
import torch.nn.functional as F

from frugalnn import llm as llama
from tiny_gguf import write_tiny_llama


def naive_llama(path, tokens):
    """Plain reference forward in the Hugging Face layout (rotate halves after un-permuting q/k rows)."""
    f = llama.GGUFModelFile(path)
    c = f.config
    D, H, Hkv = c.head_dim, c.n_heads, c.n_kv_heads
    W = lambda n: torch.from_numpy(f.float(n)).double()  # noqa: E731

    def unpermute(w, heads):  # GGUF interleaved pairs -> HF halves
        return w.view(heads, D // 2, 2, -1).transpose(1, 2).reshape(heads * D, -1)

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c.norm_eps) * w

    T = tokens.shape[0]
    inv = 1.0 / c.rope_base ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(x):  # x [heads, T, D]
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = W("token_embd.weight")[tokens]
    for i in range(c.n_layers):
        p = f"blk.{i}."
        h = norm(x, W(p + "attn_norm.weight"))
        q = (h @ unpermute(W(p + "attn_q.weight"), H).T).view(T, H, D).transpose(0, 1)
        k = (h @ unpermute(W(p + "attn_k.weight"), Hkv).T).view(T, Hkv, D).transpose(0, 1)
        v = (h @ W(p + "attn_v.weight").T).view(T, Hkv, D).transpose(0, 1)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // Hkv, 0), v.repeat_interleave(H // Hkv, 0)
        s = q @ k.transpose(1, 2) / D ** 0.5 + torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(T, H * D)
        x = x + o @ W(p + "attn_output.weight").T
        h = norm(x, W(p + "ffn_norm.weight"))
        x = x + (F.silu(h @ W(p + "ffn_gate.weight").T) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
    head = W("token_embd.weight") if f.tied_embeddings else W("output.weight")
    return norm(x, W("output_norm.weight")) @ head.T


@pytest.mark.parametrize("heads,kv", [(4, 2), (4, 4), (4, 1)])
def test_matches_naive_reference_and_cache(tmp_path, heads, kv):
    path = write_tiny_llama(tmp_path / "t.gguf", n_heads=heads, n_kv_heads=kv)
    model = llama.load(path)
    tokens = torch.tensor([[3, 17, 99, 5, 64, 2, 7]])
    ref = naive_llama(path, tokens[0])
    full = model(tokens)[0]
    assert torch.allclose(full.double(), ref, atol=1e-4)
    model.setup_cache(16)
    steps = [model(tokens[:, :3], start=0)] + [model(tokens[:, i:i + 1], start=i) for i in range(3, 7)]
    assert torch.allclose(torch.cat(steps, 1)[0], full, atol=1e-5)


def test_untied_head_and_quantized_file(tmp_path):
    path = write_tiny_llama(tmp_path / "q.gguf", qtype="Q8_0", tied=False)
    model = llama.load(path)
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(tokens)[0].double(), naive_llama(path, tokens[0]), atol=1e-4)


def test_low_bit_paths_run_and_stay_close(tmp_path):
    path = write_tiny_llama(tmp_path / "q4.gguf", qtype="Q4_0", dim=128, ffn=256, tied=False)
    tokens = torch.tensor([[1, 2, 3, 4, 5]])
    ref = llama.load(path)(tokens)
    m4 = llama.load(path, bits=4)
    assert m4.direct_tensors == 2 * 7 + 1  # every Q4_0 projection and the head went in as stored
    err4 = (m4(tokens) - ref).norm() / ref.norm()
    assert err4 < 0.05  # lossless weights; only the kernel's int8 activation tables differ
    errs = {}
    for bits in ("3", "2", "ternary"):
        m = llama.load(path, bits=bits)
        out = m(tokens)
        assert out.shape == ref.shape and torch.isfinite(out).all()
        errs[bits] = float((out - ref).norm() / ref.norm())
    assert errs["3"] < errs["2"]


def test_sampling():
    logits = torch.tensor([0.0, 5.0, 4.9, -2.0])
    assert llama.sample(logits, llama.Sampling()) == 1
    s = llama.Sampling(temperature=1.0, top_p=0.5, seed=0)
    g = s.generator()
    assert {llama.sample(logits, s, g) for _ in range(50)} == {1}  # nucleus of 0.5 holds only the top token
    s = llama.Sampling(temperature=1.0, top_p=0.9, seed=0)
    g = s.generator()
    assert {llama.sample(logits, s, g) for _ in range(200)} == {1, 2}
    s = llama.Sampling(temperature=5.0, seed=1)
    g = s.generator()
    assert {llama.sample(logits, s, g) for _ in range(400)} == {0, 1, 2, 3}
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(temperature=float("nan"))):
        with pytest.raises(ValueError):
            llama.Sampling(**bad)


def test_session_reuses_prefix_and_stops(tmp_path):
    model = llama.load(write_tiny_llama(tmp_path / "t.gguf", ctx=32))
    session = llama.Session(model)
    out, st = session.generate([1, 2, 3], 5)
    assert len(out) == 5 and st.stop == "max_tokens" and st.decode_steps == 4
    again, st2 = session.generate([1, 2, 3] + out[:4] + [9], 3)
    assert st2.reused_tokens == 7 and st2.prompt_tokens == 1
    fresh, _ = llama.generate(model, [1, 2, 3] + out[:4] + [9], 3)
    assert again == fresh
    _, st3 = session.generate([5] * 30, 10)
    assert st3.stop == "context" and len(session.tokens) == 32
    first = llama.generate(model, [1, 2], 1)[0][0]
    out, st4 = session.generate([1, 2], 10, stop_ids={first})
    assert st4.stop == "eos" and len(out) == 1


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        llama.load(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ValueError, match="not a readable GGUF"):
        llama.load(tmp_path / "junk.gguf")
    good = write_tiny_llama(tmp_path / "t.gguf")
    (tmp_path / "cut.gguf").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.gguf"):
        llama.load(tmp_path / "cut.gguf")
    with pytest.raises(ValueError, match="architecture 'gpt2'"):
        llama.load(write_tiny_llama(tmp_path / "g.gguf", arch="gpt2"))
    with pytest.raises(ValueError, match="attn_v"):
        llama.load(write_tiny_llama(tmp_path / "d.gguf", drop="blk.1.attn_v.weight"))
    with pytest.raises(ValueError, match="bits"):
        llama.load(good, bits=5)
    model = llama.load(good)
    with pytest.raises(ValueError, match="context"):
        llama.generate(model, list(range(64)), 4)
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="setup_cache"):
        model(torch.zeros(1, 2, dtype=torch.long), start=0)
    with pytest.raises(FileNotFoundError, match="smollm2"):
        llama.resolve_model_path("no-such-model")


def test_ctrl_c_stops_cleanly_with_what_it_has(tmp_path):
    model = llama.load(write_tiny_llama(tmp_path / "t.gguf"))
    seen = []

    def on_token(t):
        seen.append(t)
        if len(seen) == 3:
            raise KeyboardInterrupt

    session = llama.Session(model)
    out, st = session.generate([1, 2, 3], 20, on_token=on_token)
    assert st.stop == "interrupted" and out == seen and len(out) == 3
    again, _ = session.generate([1, 2, 3], 5)  # the session is still usable
    assert again[:3] == out
