"""A Q4_K_M-style Llama file (Q4_K and Q6_K tensors, Q6_K head) and Q2_K/Q3_K files load as stored: every
projection and the head keep the file's codes, the layers multiply by the file's weights, and text comes out.
The files are written here with raw random K-quant blocks (any bytes are valid codes and sub-scales; the fp16
d/dmin fields set to sane values), so no llama.cpp is needed."""
import gguf
import numpy as np
import pytest
import torch

from frugalnn import llm
from frugalnn.llm.layers import StackedLinear
from frugalnn.tmac.nn import LUTLinear
from test_kquant import FILE_BPW, kquant_blocks

T = gguf.GGMLQuantizationType
# d (and dmin) per type giving weights of roughly 0.01-0.1, as ../shared/peers/gen_gguf.py picks them
SCALE = {"Q2_K": 1e-2, "Q3_K": 2e-3, "Q4_K": 5e-4, "Q5_K": 2.5e-4, "Q6_K": 1e-4}
# Q4_K_M as llama.cpp writes it: attn_v and ffn_down in Q6_K (in some layers; here in layer 0), head Q6_K
Q4_K_M = {"attn_v": "Q6_K", "ffn_down": "Q6_K", "output": "Q6_K", "token_embd": "Q4_K"}


def tq2_0_blocks(m, k, rng, scale=5e-2):
    """Valid TQ2_0 blocks: 2-bit fields in {0, 1, 2} (3 is not ternary), fp16 d at byte 64."""
    fields = rng.integers(0, 3, (m * k // 256, 64, 4), dtype=np.uint8)
    b = np.zeros((m * k // 256, 66), np.uint8)
    b[:, :64] = (fields << (2 * np.arange(4, dtype=np.uint8))).sum(axis=-1, dtype=np.uint8)
    b[:, 64:66] = (rng.uniform(0.5, 1, b.shape[0]) * scale).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return b.reshape(m, -1)


def write_kquant_llama(path, base: str, overrides=None, dim=256, ffn=512, n_layers=2, heads=4, kv=2, vocab=256,
                       seed=0):
    rng = np.random.default_rng(seed)
    overrides = overrides or {}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("llama.block_count", n_layers)
    w.add_uint32("llama.context_length", 64)
    w.add_uint32("llama.embedding_length", dim)
    w.add_uint32("llama.feed_forward_length", ffn)
    w.add_uint32("llama.attention.head_count", heads)
    w.add_uint32("llama.attention.head_count_kv", kv)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_uint32("llama.rope.dimension_count", dim // heads)
    w.add_uint32("llama.vocab_size", vocab)
    hd = dim // heads

    def add(name, role, shape, layer=0):
        qt = overrides.get(role, base) if layer == 0 or role in ("output", "token_embd") else base
        blocks = tq2_0_blocks(*shape, rng) if qt == "TQ2_0" else kquant_blocks(qt, shape[0], shape[1], rng, SCALE[qt])
        w.add_tensor(name, blocks, raw_dtype=T[qt])

    add("token_embd.weight", "token_embd", (vocab, dim))
    add("output.weight", "output", (vocab, dim))
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    for i in range(n_layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, np.float32))
        add(p + "attn_q.weight", "attn_q", (heads * hd, dim), i)
        add(p + "attn_k.weight", "attn_k", (kv * hd, dim), i)
        add(p + "attn_v.weight", "attn_v", (kv * hd, dim), i)
        add(p + "attn_output.weight", "attn_output", (dim, heads * hd), i)
        add(p + "ffn_gate.weight", "ffn_gate", (ffn, dim), i)
        add(p + "ffn_up.weight", "ffn_up", (ffn, dim), i)
        add(p + "ffn_down.weight", "ffn_down", (dim, ffn), i)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _lut_layers(module):
    if isinstance(module, StackedLinear):
        return list(module.parts)
    return [module] if isinstance(module, LUTLinear) else []


@pytest.mark.parametrize("base,overrides,bits", [("Q4_K", Q4_K_M, "4"), ("Q3_K", {"output": "Q6_K"}, "3"),
                                                 ("Q2_K", {"output": "Q6_K", "attn_v": "Q4_K"}, "2"),
                                                 ("Q5_K", {}, "4"),
                                                 ("TQ2_0", {"output": "Q6_K", "token_embd": "Q6_K"}, "ternary")])
def test_kquant_files_load_as_stored_and_generate(tmp_path, base, overrides, bits):
    path = write_kquant_llama(tmp_path / f"{base}.gguf", base, overrides)
    tokens = torch.tensor([[1, 2, 3, 4, 5]])
    ref = llm.load(path)(tokens)  # fp32 weights from gguf's dequantize
    model = llm.load(path, bits=bits)
    assert model.direct_tensors == 2 * 7 + 1  # every projection and the head as stored
    f = llm.GGUFModelFile(path)
    head = _lut_layers(model.output)
    assert head and head[0].source == f"gguf:{overrides.get('output', base)}"
    np.testing.assert_array_equal(head[0].lut_weight.dequantize(), f.float("output.weight"))  # bit for bit
    for lin in _lut_layers(model.output) + [p for blk in model.layers for m in (blk.attention.wqkv, blk.mlp.down)
                                            for p in _lut_layers(m)]:
        qt = lin.source.split(":")[1]
        if qt in FILE_BPW:  # the two-level scales as stored: bytes within 5% of the file's
            assert lin.lut_weight.scales == "kq" and lin.bits_per_weight <= FILE_BPW[qt] * 1.05
        if qt == "TQ2_0":  # codes and the fp16 d as stored: the file's 2.0625 b/w
            assert lin.lut_weight.scales == "kq" and lin.bits_per_weight == pytest.approx(2.0625)
    qkv = _lut_layers(model.layers[0].attention.wqkv)
    want = [overrides.get(r, base) for r in ("attn_q", "attn_k", "attn_v")]
    got = [lin.source.split(":")[1] for lin in qkv]
    assert got == (want if len(set(want)) > 1 else [base])  # mixed types: one layer per tensor
    out = model(tokens)
    assert torch.isfinite(out).all()
    assert float((out - ref).norm() / ref.norm()) < 0.05  # the file's weights; only int8 activation tables differ
    ids, stats = llm.generate(model, [1, 2, 3], max_new_tokens=4)  # the one-token (compiled) decode path too
    ids_ref, _ = llm.generate(llm.load(path, bits=bits), [1, 2, 3], max_new_tokens=4)
    assert len(ids) == 4 and ids == ids_ref
    # the compiled one-token decoder runs the two-level layers, and agrees with the torch path
    model.setup_cache(16)
    assert model.fast_decode_reason() == ""
    fast = [model(tokens[:, i:i + 1], start=i) for i in range(5)]
    model.fast_decode = False
    model.setup_cache(16)
    slow = [model(tokens[:, i:i + 1], start=i) for i in range(5)]
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-5)
