"""Peak resident memory of a generation, ours against llama.cpp, each side in a fresh process.

What is measured, identically for both sides: a process that loads the GGUF with a context of `n_ctx` positions,
evaluates a fixed prompt of `n_prompt` token ids and generates `n_gen` tokens one at a time, then reports its own
peak RSS (VmHWM: the high-water mark of resident memory, file-backed pages included, so memory-mapped weights
count on both sides). Ours includes the tokenizer `frugalnn generate` loads; llama.cpp's holds its own.

The two sides differ in design, which is the point of the figure: llama.cpp allocates an fp16 KV cache for the whole
context up front (its RSS grows with n_ctx), ours allocates float32 k/v as the conversation grows (frugalnn.llm.
Session), keeps the embedding as stored and drops the file pages of converted weights (frugalnn.llm.load). Ours
carries torch (~220 MB resident after `import torch`), which llama.cpp does not.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_OURS = r"""
import json, sys
PEAK
from frugalnn import llm
path, bits, n_ctx, n_prompt, n_gen, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
model = llm.load(path, bits=bits, threads=threads, max_positions=min(n_ctx, llm.GGUFModelFile(path).config.context_length))
tokenizer = llm.load_tokenizer(path) if sys.argv[7] == "1" else None
prompt = [1] + [300 + (i * 7) % 900 for i in range(n_prompt - 1)]
llm.Session(model, model.max_positions).generate(prompt, n_gen)
print(json.dumps({"peak_rss_mib": peak_rss_mib()}))
"""

_PEER = r"""
import json, sys
PEAK
from llama_cpp import Llama
path, n_ctx, n_prompt, n_gen, threads = sys.argv[1], *map(int, sys.argv[2:6])
llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False,
            use_mmap=True)
prompt = [1] + [300 + (i * 7) % 900 for i in range(n_prompt - 1)]
llm.eval(prompt)
tok = 400
for i in range(n_gen):
    llm.eval([tok]); tok = 300 + (tok * 13 + i) % 900
print(json.dumps({"peak_rss_mib": peak_rss_mib()}))
"""


# VmHWM of this process's own memory map, not getrusage's ru_maxrss: Linux folds the high-water mark of the memory
# map a process replaces at exec into ru_maxrss, and a child started by vfork (subprocess does) replaces the
# parent's map, so ru_maxrss would report the parent's peak (a bench process holding a model: ~1-2 GB).
_PEAK = r"""
def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def _run(code: str, args: list[str], timeout: float) -> float:
    code = code.replace("PEAK", _PEAK)
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        tail = [line for line in res.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(tail[-1][-300:] if tail else f"exit code {res.returncode}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mib"])


def peak_rss_ours(path: str | Path, bits: str, n_ctx: int, n_prompt: int = 64, n_gen: int = 16, threads: int = 1,
                  tokenizer: bool = True, timeout: float = 900) -> float:
    """Peak RSS (MiB) of a fresh process generating with our Llama; the tokenizer is loaded too unless told not."""
    return _run(_OURS, [str(path), str(bits), str(n_ctx), str(n_prompt), str(n_gen), str(threads),
                        "1" if tokenizer else "0"], timeout)


def peak_rss_peer(path: str | Path, n_ctx: int, n_prompt: int = 64, n_gen: int = 16, threads: int = 1,
                  timeout: float = 900) -> float:
    """Peak RSS (MiB) of a fresh process generating with llama-cpp-python on the same file and context."""
    return _run(_PEER, [str(path), str(n_ctx), str(n_prompt), str(n_gen), str(threads)], timeout)
