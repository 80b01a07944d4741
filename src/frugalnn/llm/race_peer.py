"""llama.cpp's side of `frugalnn bench llm`, always in a subprocess (its OpenMP runtime never meets torch's).

  time_peer        ../shared/peers/tg_bench.py's prefill and decode timing (one repeat per call);
  peer_logits      last-position logits of a token list (the accuracy check);
  peer_perplexity  the `llm` perplexity text scored in the same windows as frugalnn.llm.perplexity;
  peer_isa         the ISA flags llama.cpp reports in its system_info line (AVX2, AVX512, AVX512_VNNI, ...).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def last_line(text: str) -> str:
    """The last line of a subprocess's stderr (the exception), for a one-line 'not measured' reason."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no error output"


def peer_script(peers_dir: str | None) -> Path | None:
    from frugalnn.llm.race_files import peers_dir as find

    folder = find(peers_dir)
    return folder / "tg_bench.py" if folder is not None and (folder / "tg_bench.py").is_file() else None


def time_peer(script: Path, path: Path, threads: int, n_prompt: int, n_gen: int) -> dict:
    cmd = [sys.executable, str(script), str(path), "--threads", str(threads), "--n-gen", str(n_gen),
           "--n-prompt", str(n_prompt), "--reps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"llama.cpp peer failed: {last_line(res.stderr)}")
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    row = next(line for line in lines if "tg_tok_s" in line)
    return {"pp_s": n_prompt / row["pp_tok_s"], "tg_s": row["tg_ms_per_tok"] / 1e3, "version": lines[0]}


ISA_FLAGS = ("AVX", "AVX2", "FMA", "F16C", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI",
             "AMX_INT8", "NEON", "DOTPROD", "SVE")


def peer_isa(system_info: str) -> list[str]:
    """The ISA flags set (= 1) in llama.cpp's system_info line, e.g. ['AVX', 'AVX2', 'AVX512', 'AVX512_VNNI']."""
    found = []
    for part in system_info.replace("|", "\n").splitlines():
        if "=" not in part:
            continue
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name in ISA_FLAGS and value.strip() == "1":
            found.append(name)
    return found


# llama.cpp's logits for a token list (the last position), or the summed NLL over windows
_PEER_LOGITS = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, threads, ids, out = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=path, n_ctx=max(64, len(ids) + 8), n_threads=threads, n_threads_batch=threads,
            logits_all=True, verbose=False)
llm.eval(ids)
np.save(out, np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32))
"""

_PEER_NLL = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, threads, windows = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
llm = Llama(model_path=path, n_ctx=max(64, max(len(w) for w in windows) + 8), n_batch=512, n_ubatch=512,
            n_threads=threads, n_threads_batch=threads, logits_all=True, verbose=False)
total, count = 0.0, 0
for w in windows:
    llm.reset()
    llm.eval(w)
    z = np.asarray(llm.scores[:len(w) - 1], dtype=np.float64)
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    total += float((lse - z[np.arange(len(w) - 1), w[1:]]).sum())
    count += len(w) - 1
print(json.dumps({"nll": total, "count": count}))
"""


def peer_logits(path: Path, ids: list[int], threads: int) -> np.ndarray:
    """llama.cpp's last-position logits for `ids` on the file at `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        res = subprocess.run([sys.executable, "-c", _PEER_LOGITS, str(path), str(threads), json.dumps(ids), str(out)],
                             capture_output=True, text=True, timeout=3600)
        if res.returncode != 0:
            raise RuntimeError(f"llama.cpp logits failed: {last_line(res.stderr)}")
        return np.load(out)


def windows(token_ids: list[int], window: int) -> list[list[int]]:
    """The windows frugalnn.llm.perplexity scores: consecutive chunks of `window`, each of >= 2 tokens."""
    chunks = [token_ids[i:i + window] for i in range(0, len(token_ids), window)]
    return [c for c in chunks if len(c) >= 2]


def peer_perplexity(path: Path, token_ids: list[int], window: int, threads: int) -> float:
    """llama.cpp's perplexity on `token_ids`, windows and scoring as frugalnn.llm.perplexity.perplexity."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "windows.json"
        spec.write_text(json.dumps(windows(token_ids, window)))
        res = subprocess.run([sys.executable, "-c", _PEER_NLL, str(path), str(threads), str(spec)],
                             capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"llama.cpp perplexity failed: {last_line(res.stderr)}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return math.exp(out["nll"] / out["count"])
