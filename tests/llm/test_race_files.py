"""The race files and rows of `frugalnn bench llm` (issue 18): made reproducibly, cached, visible when not made.

gguf-py only: the peer (llama.cpp) and ../shared/peers are never needed here. gen_gguf.py is stood in for by a
small script with its command line, so the cache and recipe logic is tested wherever the suite runs."""
import json
from pathlib import Path

import numpy as np
import pytest

from frugalnn.llm import bench as llm_bench
from frugalnn.llm import race_files, race_peer

# A stand-in for ../shared/peers/gen_gguf.py: same command line, writes a tiny Llama GGUF in F32 and
# counts its runs, so a test can tell a cache hit from a rewrite.
FAKE_GEN = '''
import sys, pathlib
sys.path.insert(0, {tests!r})
from tiny_gguf import write_tiny_llama
out = sys.argv[1]
write_tiny_llama(pathlib.Path(out))  # tiny whatever the shape asked: only the cache logic is under test
runs = pathlib.Path(out).parent / "runs.txt"
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
'''
SMALL = {"n_embd": 64, "n_ff": 96, "n_layer": 2, "n_head": 4, "n_head_kv": 4, "n_vocab": 128}


@pytest.fixture
def fake_gen(tmp_path):
    gen = tmp_path / "peers" / "gen_gguf.py"
    gen.parent.mkdir()
    gen.write_text(FAKE_GEN.format(tests=str(Path(__file__).parent)))
    return gen


def runs(folder: Path) -> int:
    p = folder / "runs.txt"
    return len(p.read_text()) if p.exists() else 0


def test_random_file_is_cached_with_its_recipe_and_rewritten_when_the_generator_changes(tmp_path, fake_gen):
    folder = tmp_path / "cache"
    out = race_files.make_random("7b-q2_k", fake_gen, "q2_k", "q6_k", SMALL, folder)
    assert out == folder / "7b-q2_k.gguf" and out.is_file() and runs(folder) == 1
    recipe = json.loads((folder / "7b-q2_k.gguf.json").read_text())
    assert recipe["args"][:4] == ["--type", "q2_k", "--out-type", "q6_k"] and "--n-embd" in recipe["args"]
    assert race_files.is_fresh_random("7b-q2_k", fake_gen, "q2_k", "q6_k", SMALL, folder)
    race_files.make_random("7b-q2_k", fake_gen, "q2_k", "q6_k", SMALL, folder)
    assert runs(folder) == 1  # cached
    fake_gen.write_text(fake_gen.read_text() + "\n# fixed: valid TQ2_0 codes\n")
    assert not race_files.is_fresh_random("7b-q2_k", fake_gen, "q2_k", "q6_k", SMALL, folder)
    race_files.make_random("7b-q2_k", fake_gen, "q2_k", "q6_k", SMALL, folder)
    assert runs(folder) == 2  # a file from an older generator is written again
    race_files.make_random("7b-q2_k", fake_gen, "q2_k", "q6_k", {**SMALL, "n_layer": 3}, folder)
    assert runs(folder) == 3  # and so is one made with other arguments


def test_a_failing_generator_leaves_no_file(tmp_path):
    gen = tmp_path / "gen_gguf.py"
    gen.write_text("import sys; sys.exit('no such type')")
    with pytest.raises(RuntimeError, match="gen_gguf.py failed for 7b-x: no such type"):
        race_files.make_random("7b-x", gen, "q9_k", "q6_k", SMALL, tmp_path)
    assert not list(tmp_path.glob("*.gguf*"))


def test_f32_copy_keeps_metadata_and_dequantizes_exactly(tmp_path):
    import gguf
    from tiny_gguf import write_tiny_llama

    src = write_tiny_llama(tmp_path / "q.gguf", qtype="Q8_0", dim=64, ffn=128)
    out = race_files.write_f32_copy(src, tmp_path / "f32.gguf")
    a, b = gguf.GGUFReader(str(src)), gguf.GGUFReader(str(out))
    assert {k for k in a.fields if not k.startswith("GGUF.")} == {k for k in b.fields if not k.startswith("GGUF.")}
    for k in a.fields:
        if not k.startswith("GGUF."):
            assert a.fields[k].contents() == b.fields[k].contents(), k
    tb = {t.name: t for t in b.tensors}
    assert any(t.tensor_type.name == "Q8_0" for t in a.tensors)
    for t in a.tensors:
        assert tb[t.name].tensor_type.name == "F32"
        want = gguf.quants.dequantize(t.data, t.tensor_type)
        np.testing.assert_array_equal(np.asarray(tb[t.name].data).reshape(want.shape), want)


def test_tensor_types_counts_the_2d_tensors(tmp_path):
    from tiny_gguf import write_tiny_llama

    path = write_tiny_llama(tmp_path / "q.gguf", qtype="Q8_0", dim=64, ffn=128)
    types = race_files.tensor_types(path)
    assert sum(types.values()) == 7 * 2 + 1  # 7 linear tensors per block + the (tied) embedding


def test_resolve_files_says_why_a_file_is_not_there(tmp_path, monkeypatch, fake_gen):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path / "cache"))
    out = llm_bench.resolve_files(["smollm2-q2_k", "7b-q4_0", "7b-q2_k"], make_7b=False, named=set(),
                                  peers_dir=str(fake_gen.parent), have_llama_cpp=False)
    assert out["smollm2-q2_k"].startswith("not measured") and "llama-cpp-python" in out["smollm2-q2_k"]
    assert out["7b-q4_0"].startswith("not measured") and "--make-7b" in out["7b-q4_0"]
    missing = llm_bench.resolve_files(["7b-q4_0"], True, {"7b-q4_0"}, str(tmp_path / "nowhere"), False)
    assert missing["7b-q4_0"] == "not measured: ../shared/peers/gen_gguf.py not found (pass --peers-dir)"
    made = llm_bench.resolve_files(["7b-q4_0"], True, set(), str(fake_gen.parent), False)
    assert made["7b-q4_0"] == tmp_path / "cache" / "race" / "7b-q4_0.gguf"  # --make-7b writes it


def test_stored_as_and_verdicts():
    class M:
        class config:
            n_layers = 2
        direct_tensors = 15
        file_types = {"Q4_0": 14, "Q6_K": 1}

    assert llm_bench.stored_as(M, "4", 4.6, 4.5) == ("identical", "identical bytes (15/15 linear tensors as stored)")
    status, text = llm_bench.stored_as(M, "4", 5.0, 4.5)
    assert status == "widened" and "5.00 b/w held vs the file's 4.50" in text
    M.direct_tensors = 14
    status, text = llm_bench.stored_as(M, "2", 2.5, 2.6)
    assert status == "requantized" and text.startswith("re-quantized, not identical bytes: 14/15")
    assert "Q6_K x1" in text
    assert llm_bench.verdict(1.6, 1.5, "identical") == "meets >= 1.5x"
    assert llm_bench.verdict(1.2, 1.5, "identical") == "misses >= 1.5x"
    assert llm_bench.verdict(1.6, 1.5, "widened") == "meets >= 1.5x (holding more bytes than the file)"
    assert "no verdict" in llm_bench.verdict(2.5, 2.0, "requantized")
    assert llm_bench.verdict(None, 2.0, "identical").startswith("not measured")
    assert llm_bench.verdict(1.0, None, "identical") == "no target"


def test_bench_rows_for_a_file_not_made_are_visible(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(llm_bench, "_has_llama_cpp", lambda: False)  # as in CI: no peer to re-quantize with
    from frugalnn.bench.harness import BenchArgs

    report = llm_bench.bench_llm(BenchArgs(quick=True, threads=[1], repeats=1, options={
        "no_peer": True, "only": ["7b-tq2_0", "smollm2-q4_k_m"], "no_memory": True,
        "peers_dir": str(tmp_path / "nowhere")}))
    from frugalnn.kernels import other_backends

    rows = [(r.case.split(" ")[0], r.impl, r.median_ms) for r in report.rows]
    ours = ("frugalnn", *(f"frugalnn ({b})" for b in other_backends()))  # each of our backends: a visible row
    assert {(k, i) for k, i, _ in rows} == {(k, i) for k in ("7b-tq2_0", "smollm2-q4_k_m")
                                          for i in (*ours, "llama.cpp")}
    assert all(ms is None for *_, ms in rows) and len(rows) == 4 * (len(ours) + 1)  # decode and prefill, all sides
    assert all(r.extra["not measured"].startswith("not measured") for r in report.rows)


def test_peer_isa_reads_system_info():
    info = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 0 | LLAMAFILE = 1 | OPENMP = 1 |")
    assert race_peer.peer_isa(info) == ["AVX", "AVX2", "F16C", "FMA", "AVX512", "AVX512_VBMI", "AVX512_VNNI",
                                        "AVX512_BF16"]
    assert race_peer.peer_isa("") == []


def test_peer_windows_are_the_perplexity_windows():
    import torch

    from frugalnn.llm.perplexity import perplexity

    ids = list(range(1, 1100))
    seen = []
    perplexity(lambda x: (seen.append(x[0].tolist()), torch.zeros(1, x.shape[1], 2000))[1], ids, window=512)
    assert race_peer.windows(ids, 512) == seen
    assert race_peer.windows([1, 2, 3], 2) == [[1, 2]]  # a 1-token tail is not scored


def test_decode_profile_of_our_side_and_its_table(tmp_path):
    from tiny_gguf import write_tiny_llama

    from frugalnn import llm as llama
    from frugalnn.llm import race_profile

    model = llama.load(write_tiny_llama(tmp_path / "t.gguf", qtype="Q4_0", dim=64, ffn=128), bits="4")
    ops = race_profile.ours(model, reps=2)
    assert list(ops) == ["qkv", "o", "gate_up", "down", "head"] and all(v > 0 for v in ops.values())
    text = race_profile.table(ops, "not measured: no peer", sum(ops.values()) + 1.0, None)
    assert "| other (attention, norms, RoPE, embedding) | 1.0 | - | - |" in text
    assert "llama.cpp per op: not measured: no peer" in text
    both = race_profile.table({"qkv": 2.0}, {"qkv": 3.0}, 4.0, 5.0)
    assert "| qkv | 2.0 | 3.0 | 1.50 |" in both and "| other (attention, norms, RoPE, embedding) | 2.0 | 2.0 | 1.00 |" in both


def test_decode_profile_of_the_peer_on_the_files_types(tmp_path):
    from tiny_gguf import write_tiny_llama

    from frugalnn.bench import ggml_peer
    from frugalnn.llm import race_profile

    try:
        ggml_peer.load()
    except ggml_peer.PeerUnavailable as e:
        pytest.skip(f"llama.cpp (ggml) not available: {e}")
    ops = race_profile.peer(write_tiny_llama(tmp_path / "t.gguf", qtype="Q4_0", dim=64, ffn=128), threads=1, reps=2)
    assert list(ops) == ["qkv", "o", "gate_up", "down", "head"] and all(v > 0 for v in ops.values())
