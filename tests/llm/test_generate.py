"""`frugalnn generate` / `frugalnn perplexity` end to end on the real SmolLM2 file (4-bit LUT path)."""
import json

import pytest
from tiny_gguf import write_tiny_llama

from frugalnn.cli import main
from frugalnn.kernels import available_backends, use_backend


def test_generate_tokyo(smollm2_path, capsys):
    rc = main(["generate", "--model", "smollm2", "--bits", "4", "--threads", "1", "--max-tokens", "12",
               "The capital of Japan is"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Tokyo" in out
    assert "prefill" in err and "decode" in err and "tok/s" in err and "peak memory" in err


def test_perplexity_quick_json(smollm2_path, capsys):
    # the command's wiring and output; on the fastest backend: 1022 tokens of 4-bit prefill take ~5 min
    # on the serial kernels, whose arithmetic tests/tmac and tests/llm/test_fast.py check
    with use_backend(available_backends()[-1]):
        rc = main(["perplexity", "--model", str(smollm2_path), "--bits", "4", "--threads", "1", "--quick", "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    r = json.loads(out)
    assert r["scored_tokens"] == 1022 and r["bits"] == "4"
    assert 5 < r["perplexity"] < 40


def test_prompt_longer_than_context(smollm2_path, capsys):
    rc = main(["generate", "--model", "smollm2", "--bits", "4", "--threads", "1", "--no-template", "word " * 8300])
    err = capsys.readouterr().err
    assert rc == 2 and "does not fit the context of 8192" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["--bits", "5", "x"], "bits: expected one of"),
    (["--model", "/no/such/file.gguf", "x"], "no such GGUF file"),
    (["--model", "no-such-model", "x"], "neither 'smollm2'"),
    (["--max-tokens", "0", "x"], "--max-tokens"),
    (["--threads", "0", "x"], "--threads"),
    ([], "give a prompt"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    rc = main(["generate", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) <= 2


def test_corrupt_and_foreign_files(tmp_path, capsys):
    (tmp_path / "junk.gguf").write_bytes(b"\0" * 100)
    gpt2 = write_tiny_llama(tmp_path / "g.gguf", arch="gpt2")
    for path, message in ((tmp_path / "junk.gguf", "not a readable GGUF"), (gpt2, "architecture 'gpt2'")):
        rc = main(["generate", "--model", str(path), "--bits", "fp32", "x"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err
