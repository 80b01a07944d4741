"""Fuzz the GGUF loader (issue 19): `frugalnn.llm.load` on mutations of a tiny generated Llama file either builds a
model that runs one forward pass, or raises a ValueError/TypeError/FileNotFoundError naming the problem -- never a
crash, a hang, a MemoryError or another exception.

Mutations: the header's counts and first key length set to 0..2^64-1; random bytes flipped in the header, metadata and tensor-info region (everything before the first
tensor's data) and in the data region; truncation at a random length; and metadata written with values of the
wrong type or out of range (block_count 2^32-1, context 2^32-1, NaN/0/negative floats, strings for integers).
Both an F32 and a Q4_0 file are mutated, loaded at --bits fp32 and 4. Cases are drawn with a fixed seed and run in
one child (tests/fuzz/harness.py), so a crash fails the test naming its case. FRUGALNN_FUZZ_EXAMPLES=N draws N.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import strategies as st

from harness import draw_cases, examples, run_batch

TESTS_LLM = str(Path(__file__).parents[1] / "llm")
ALLOWED = ("TypeError", "ValueError", "FileNotFoundError")

SETUP = r'''
import os, sys, tempfile
nan, inf = float("nan"), float("inf")
import gguf, torch
sys.path.insert(0, TESTS_LLM)
from tiny_gguf import write_tiny_llama
from frugalnn import llm as llama

_dir = tempfile.mkdtemp(prefix="fuzz-gguf-")
BASE = {q: write_tiny_llama(os.path.join(_dir, q + ".gguf"), qtype=q, dim=32, n_heads=2, n_kv_heads=1, ffn=64,
                            vocab=64, ctx=32) for q in ("F32", "Q4_0")}
DATA_START = {q: min(t.data_offset for t in gguf.GGUFReader(str(p)).tensors) for q, p in BASE.items()}


def _try(path, bits):
    model = llama.load(path, bits=bits, threads=1)
    model(torch.tensor([[1, 2, 3]]))


def bytes_case(qtype, region, flips, cut, bits):
    data = bytearray(open(BASE[qtype], "rb").read())
    start, end = (0, DATA_START[qtype]) if region == "head" else (DATA_START[qtype], len(data))
    for at, value in flips:
        data[start + at % (end - start)] = value
    if cut is not None:
        data = data[:cut % len(data)]
    path = os.path.join(_dir, "case.gguf")
    with open(path, "wb") as f:
        f.write(data)
    _try(path, bits)


def header_case(qtype, at, value, bits):
    """Overwrite a uint64 of the header: 8 = tensor count, 16 = metadata count, 24 = first key's length."""
    import struct
    data = bytearray(open(BASE[qtype], "rb").read())
    data[at:at + 8] = struct.pack("<Q", value)
    path = os.path.join(_dir, "header.gguf")
    with open(path, "wb") as f:
        f.write(data)
    _try(path, bits)


def meta_case(qtype, key, value, bits):
    path = write_tiny_llama(os.path.join(_dir, "meta.gguf"), qtype=qtype, dim=32, n_heads=2, n_kv_heads=1, ffn=64,
                            vocab=64, ctx=32, meta={key: value})
    _try(path, bits)
'''.replace("TESTS_LLM", repr(TESTS_LLM))

KEYS = ["{arch}.block_count", "{arch}.context_length", "{arch}.embedding_length", "{arch}.feed_forward_length",
        "{arch}.attention.head_count", "{arch}.attention.head_count_kv", "{arch}.attention.layer_norm_rms_epsilon",
        "{arch}.rope.freq_base", "{arch}.rope.dimension_count", "{arch}.vocab_size", "{arch}.attention.key_length",
        "{arch}.rope.scaling.type", "{arch}.rope.scaling.factor", "tokenizer.ggml.eos_token_id", "general.name"]
VALUES = [0, 1, 3, 7, 2**31 - 1, 2**32 - 1, 2**40, float("nan"), float("inf"), -1.0, 0.0, 1e30, 1e-30, "4",
          "linear", "yarn", "", [1, 2], True]


@st.composite
def bytes_case(draw):
    flips = draw(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=4))
    cut = draw(st.none() | st.integers(0, 2**20))
    return (f"bytes_case({draw(st.sampled_from(['F32', 'Q4_0']))!r}, {draw(st.sampled_from(['head', 'data']))!r}, "
            f"{flips!r}, {cut!r}, {draw(st.sampled_from(['fp32', '4']))!r})")


@st.composite
def header_case(draw):
    value = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**62, 2**63 - 1, 2**64 - 1, 500, 10**9]))
    return (f"header_case({draw(st.sampled_from(['F32', 'Q4_0']))!r}, {draw(st.sampled_from([8, 16, 24]))}, "
            f"{value}, 'fp32')")


@st.composite
def meta_case(draw):
    return (f"meta_case({draw(st.sampled_from(['F32', 'Q4_0']))!r}, {draw(st.sampled_from(KEYS))!r}, "
            f"{draw(st.sampled_from(VALUES))!r}, {draw(st.sampled_from(['fp32', '4']))!r})")


def test_mutated_files_load_or_fail_cleanly():
    cases = draw_cases(bytes_case(), examples(150)) + draw_cases(meta_case(), examples(100)) + \
        draw_cases(header_case(), examples(30))
    outcomes = run_batch(SETUP, cases, timeout=240, allowed=ALLOWED,
                         env={"FRUGALNN_LUT_TUNE": "0", "PYTHONPATH": TESTS_LLM + ":" + ":".join(sys.path)})
    loaded = outcomes.count("ok")
    # the generators must reach both ends: files that still load, and files that are refused
    assert 0 < loaded < len(cases), f"{loaded} of {len(cases)} mutated files loaded"
