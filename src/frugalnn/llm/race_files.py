"""The files `frugalnn bench llm` races on, made reproducibly on this machine (never downloaded).

Two kinds, both cached under $FRUGALNN_CACHE_DIR/race (default ~/.cache/frugalnn/race):
  - Llama-2-7B-shaped files with random weights, written by the peer harness's gen_gguf.py
    (../shared/peers, a benchmark helper that is called, not copied) in Q2_K, Q3_K, Q4_K with a
    Q6_K head (Q4_K_M-like), Q4_0 and TQ2_0. LARGE: 1.9-3.8 GB each, about 15 GB for the five.
    Each file has a sidecar `<file>.json` recording the generator's command and the SHA-256 of
    gen_gguf.py; a file whose sidecar is missing or differs (e.g. written before gen_gguf.py's
    TQ2_0 fix, when blocks held the non-ternary code 3) is written again.
  - SmolLM2-135M-Instruct re-quantized BY LLAMA.CPP (llama_model_quantize through llama-cpp-python)
    to Q4_K_M, Q3_K_M and Q2_K, from an F32 GGUF of the shipped Q4_1 file's dequantized weights
    with all metadata (tokenizer included) copied. About 0.6 GB for the F32 intermediate. Needs the
    optional llama-cpp-python peer; without it these files are "not measured".
SmolLM2's width 576 is not a multiple of 256, so llama.cpp stores the tensors whose rows are 576
long in its fallback types (Q5_0 for Q4_K, IQ4_NL for Q2_K/Q3_K); `tensor_types` reports the mix.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from frugalnn import cachedir

SHAPE_7B = {"n_embd": 4096, "n_ff": 11008, "n_layer": 32, "n_head": 32, "n_head_kv": 32, "n_vocab": 32000}
# race key -> gen_gguf.py --type, --out-type (the head; token_embd stays gen_gguf's default Q4_0)
FILES_7B = {
    "7b-q4_k_m": ("q4_k", "q6_k"),
    "7b-q4_0": ("q4_0", "q6_k"),
    "7b-q3_k": ("q3_k", "q6_k"),
    "7b-q2_k": ("q2_k", "q6_k"),
    "7b-tq2_0": ("tq2_0", "q6_k"),
}
# race key -> llama.cpp's llama_ftype (include/llama.h: LLAMA_FTYPE_MOSTLY_*)
SMOLLM2_REQUANT = {"smollm2-q4_k_m": 15, "smollm2-q3_k_m": 12, "smollm2-q2_k": 10}


def cache_dir() -> Path:
    return cachedir.root() / "race"


def peers_dir(explicit: str | None = None) -> Path | None:
    """The peer harness folder (gen_gguf.py, tg_bench.py): --peers-dir, $FRUGALNN_PEERS_DIR, or
    ../shared/peers next to the repository."""
    explicit = explicit or os.environ.get("FRUGALNN_PEERS_DIR")
    if explicit:  # asked for: that folder or none, never a different harness found elsewhere
        candidates = [Path(explicit)]
    else:
        here = Path(__file__).resolve()
        candidates = [p / "shared" / "peers" for p in here.parents[:6]]  # elsewhere: --peers-dir / the variable
    for c in candidates:
        if (c / "tg_bench.py").is_file() or (c / "gen_gguf.py").is_file():
            return c
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fresh(out: Path, recipe: dict) -> bool:
    side = out.with_suffix(out.suffix + ".json")
    try:
        return out.is_file() and json.loads(side.read_text()) == recipe
    except (OSError, ValueError):
        return False


def _commit(tmp: Path, out: Path, recipe: dict) -> Path:
    """Move a finished file into place, then its sidecar: a crash in between leaves no valid-looking pair."""
    os.replace(tmp, out)
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(recipe, indent=1, sort_keys=True))
    return out


def random_recipe(generator: Path, qtype: str, out_type: str, shape: dict | None = None, seed: int = 0) -> dict:
    """What a random file is made from: gen_gguf.py's arguments and the SHA-256 of gen_gguf.py itself."""
    shape = dict(SHAPE_7B if shape is None else shape)
    args = ["--type", qtype, "--out-type", out_type, "--seed", str(seed)]
    for k, v in sorted(shape.items()):
        args += [f"--{k.replace('_', '-')}", str(v)]
    return {"generator": "gen_gguf.py", "generator_sha256": _sha256(Path(generator)), "args": args}


def is_fresh_random(key: str, generator: Path, qtype: str, out_type: str, shape: dict | None = None,
                    folder: Path | None = None, seed: int = 0) -> bool:
    """Whether the cached file for `key` exists and was made by this generator with these arguments."""
    out = Path(folder or cache_dir()) / f"{key}.gguf"
    return _fresh(out, random_recipe(generator, qtype, out_type, shape, seed))


def make_random(key: str, generator: Path, qtype: str, out_type: str, shape: dict | None = None,
                folder: Path | None = None, seed: int = 0) -> Path:
    """A random-weight Llama GGUF written by gen_gguf.py (cached; rewritten when the recipe changed)."""
    folder = Path(folder or cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    recipe = random_recipe(generator, qtype, out_type, shape, seed)
    args = recipe["args"]
    out = folder / f"{key}.gguf"
    if _fresh(out, recipe):
        return out
    tmp = folder / f".{key}.gguf.part"
    res = subprocess.run([sys.executable, str(generator), str(tmp), *args], capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"gen_gguf.py failed for {key}: {res.stderr.strip()[-300:]}")
    return _commit(tmp, out, recipe)


def write_f32_copy(src: Path, out: Path) -> Path:
    """An F32 GGUF of `src`: every key-value copied (tokenizer included), every tensor dequantized to float32
    (exact: Q4_1/Q8_0 values are fp32 products of fp16 scales and small integers)."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(out), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # the writer adds the header fields and the architecture itself
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # numpy order
        writer.add_tensor(t.name, data.reshape(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


_QUANTIZE = """
import sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3]); p.nthread = 1
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p)
sys.exit(0 if rc == 0 else f"llama_model_quantize returned {rc}")
"""


def make_requantized(key: str, src: Path, folder: Path | None = None) -> Path:
    """`src` re-quantized by llama.cpp to SMOLLM2_REQUANT[key] (cached); needs llama-cpp-python."""
    folder = Path(folder or cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    ftype = SMOLLM2_REQUANT[key]
    recipe = {"source": Path(src).name, "source_bytes": Path(src).stat().st_size, "llama_ftype": ftype,
              "quantizer": "llama_cpp.llama_model_quantize (default params, from an F32 copy)",
              "llama_cpp_python": _llama_cpp_version()}
    out = folder / f"{key}.gguf"
    if _fresh(out, recipe):
        return out
    f32 = folder / f"{Path(src).stem}-f32.gguf"
    f32_recipe = {"source": Path(src).name, "source_bytes": Path(src).stat().st_size, "f32_copy": 1}
    if not _fresh(f32, f32_recipe):
        tmp_f32 = folder / f".{f32.name}.part"
        _commit(write_f32_copy(Path(src), tmp_f32), f32, f32_recipe)
    tmp = folder / f".{key}.gguf.part"
    res = subprocess.run([sys.executable, "-c", _QUANTIZE, str(f32), str(tmp), str(ftype)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp quantize failed for {key}: {res.stderr.strip()[-300:]}")
    return _commit(tmp, out, recipe)


def _llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:  # not installed: the recipe says so, and the caller decides
        return None


def tensor_types(path: Path) -> dict[str, int]:
    """{ggml type name: number of 2-D tensors} in a GGUF (the mix llama.cpp wrote)."""
    from frugalnn.llm.gguf_file import GGUFModelFile

    f = GGUFModelFile(path)
    return dict(Counter(t.tensor_type.name for t in f.tensors.values() if len(t.shape) == 2))
