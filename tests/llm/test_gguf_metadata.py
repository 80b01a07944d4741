"""Issue 19 (items 2, 6, 13, 15): a GGUF file's metadata and float values are checked at load, and every error
names the file, the key or tensor, and the value, in one line."""
import math
import struct
import time

import numpy as np
import pytest
import torch

from frugalnn import llm as llama
from frugalnn.llm.load import DEFAULT_CONTEXT_CAP, context_bytes_per_position, physical_memory
from tiny_gguf import write_tiny_llama


def _error(path, bits="fp32", names_file=True, **load_args) -> str:
    with pytest.raises(ValueError) as e:
        llama.load(path, bits=bits, **load_args)
    message = str(e.value)
    assert "\n" not in message and (str(path) in message or not names_file), message
    return message


def test_block_count_is_bounded_by_the_tensors_in_the_file(tmp_path):
    path = write_tiny_llama(tmp_path / "b.gguf", meta={"{arch}.block_count": 0xFFFFFFFF})
    start = time.perf_counter()
    message = _error(path)
    assert time.perf_counter() - start < 5  # was: 9 x 2^32 names built before the first check
    assert "llama.block_count" in message and "4294967295" in message and "holds only 20 tensors" in message


def test_context_length_is_capped_unless_asked_for(tmp_path):
    path = write_tiny_llama(tmp_path / "c.gguf", meta={"{arch}.context_length": 2**32 - 1})
    model = llama.load(path)
    assert model.max_positions == DEFAULT_CONTEXT_CAP  # was: a torch allocator traceback
    out, _ = llama.generate(model, [1, 2, 3], 2)
    assert len(out) == 2
    assert llama.load(path, max_positions=100).max_positions == 100
    per = context_bytes_per_position(model.config)
    too_many = physical_memory() // per + 1
    message = _error(path, names_file=False, max_positions=too_many)
    assert "max_positions" in message and "memory" in message


@pytest.mark.parametrize("key,value", [
    ("attention.layer_norm_rms_epsilon", float("nan")), ("attention.layer_norm_rms_epsilon", float("inf")),
    ("attention.layer_norm_rms_epsilon", 0.0), ("attention.layer_norm_rms_epsilon", -1.0),
    ("rope.freq_base", float("nan")), ("rope.freq_base", 0.0), ("rope.freq_base", -10000.0),
])
@pytest.mark.parametrize("bits", ["fp32", "4"])
def test_float_metadata_is_checked_at_load(tmp_path, key, value, bits):
    path = write_tiny_llama(tmp_path / "f.gguf", meta={"{arch}." + key: value})
    message = _error(path, bits=bits)
    assert f"'llama.{key}'" in message and ("nan" in message or "inf" in message or str(value) in message)


@pytest.mark.parametrize("factor", [0.0, float("nan"), -2.0])
def test_rope_scale_factor_is_checked_at_load(tmp_path, factor):
    path = write_tiny_llama(tmp_path / "r.gguf", meta={"{arch}.rope.scaling.type": "linear",
                                                       "{arch}.rope.scaling.factor": factor})
    assert "'llama.rope.scaling.factor'" in _error(path)
    ok = write_tiny_llama(tmp_path / "ok.gguf", meta={"{arch}.rope.scaling.type": "linear",
                                                      "{arch}.rope.scaling.factor": 2.0})
    assert llama.load(ok).config.rope_linear_scale == 2.0


@pytest.mark.parametrize("bits", ["fp32", "4"])
def test_non_finite_norm_weight_is_refused_naming_the_tensor(tmp_path, bits):
    path = write_tiny_llama(tmp_path / "n.gguf", fill={"blk.1.attn_norm.weight": (7, float("nan"))})
    message = _error(path, bits=bits)
    assert "'blk.1.attn_norm.weight'" in message and "nan at element 7" in message


def _poison_q4_0_scale(path, tensor: str, block: int) -> None:
    """Overwrite the fp16 scale of one Q4_0 block (2-byte d + 16 bytes of codes) with NaN."""
    import gguf

    offset = {t.name: t.data_offset for t in gguf.GGUFReader(str(path)).tensors}[tensor]
    with open(path, "r+b") as f:
        f.seek(offset + block * 18)
        f.write(struct.pack("<e", math.nan))


@pytest.mark.parametrize("bits", ["fp32", "4"])
def test_non_finite_fp16_scale_is_refused_at_every_bits(tmp_path, bits):
    # was: refused at --bits 4 without the file or tensor, loaded at --bits fp32 (generate printed nothing)
    path = write_tiny_llama(tmp_path / "q.gguf", qtype="Q4_0")
    _poison_q4_0_scale(path, "blk.0.attn_k.weight", 4)
    message = _error(path, bits=bits)
    assert "blk.0.attn_k.weight" in message
    if bits == "fp32":
        assert "block 4 of Q4_0" in message


@pytest.mark.parametrize("value", ["4", [4, 4], 4.0, True])
def test_integer_metadata_of_another_type_names_the_key(tmp_path, value):
    path = write_tiny_llama(tmp_path / "h.gguf", meta={"{arch}.attention.head_count": value})
    message = _error(path)
    assert "'llama.attention.head_count'" in message and "expected an integer" in message


def test_invalid_utf8_architecture_names_the_key(tmp_path):
    path = write_tiny_llama(tmp_path / "u.gguf")
    data = path.read_bytes()
    value = struct.pack("<IQ", 8, 5) + b"llama"  # type string, length 5, bytes
    at = data.index(b"general.architecture" + value) + len(b"general.architecture") + 12
    path.write_bytes(data[:at] + b"ll\xffma" + data[at + 5:])
    message = _error(path)
    assert "'general.architecture'" in message and "UTF-8" in message


def test_group_size_must_be_positive(tmp_path):
    path = write_tiny_llama(tmp_path / "g.gguf")
    for bad in (0, -32, 2.5, True):
        with pytest.raises(ValueError, match="group_size: expected a positive integer"):
            llama.load(path, bits="3", group_size=bad)


def test_sampling_extremes_stay_finite():
    logits = torch.tensor([0.0, 5.0, 4.9, -2.0, float("-inf")])
    tiny_t = llama.Sampling(temperature=1e-40, seed=0)  # was: NaN probabilities into multinomial
    assert {llama.sample(logits, tiny_t, tiny_t.generator()) for _ in range(20)} == {1}
    tiny_p = llama.Sampling(temperature=1.0, top_p=1e-300, seed=0)  # was: an empty nucleus (1e-300 -> 0 in fp32)
    assert {llama.sample(logits, tiny_p, tiny_p.generator()) for _ in range(20)} == {1}
    assert llama.Sampling(temperature=1.0, seed=2**64 - 1).generator() is not None
    for bad in (dict(temperature=float("inf")), dict(seed=2**70), dict(seed=-1), dict(seed=1.5)):
        with pytest.raises(ValueError):
            llama.Sampling(**bad)
    assert np.isfinite(torch.softmax(logits.double(), -1).numpy()[:4]).all()
