"""End-to-end race: prefill and decode tok/s of our Llama (LUT kernels) vs llama.cpp on the same files.

Models: (a) the real SmolLM2-135M-Instruct Q4_1 GGUF, (b) Llama-2-7B-shaped GGUFs with random
weights written by ../shared/peers/gen_gguf.py in Q2_K, TQ2_0 and Q4_0 (found in --peer-models,
skipped when absent). Both sides load the same file: we take Q4_0/Q4_1/TQ2_0 tensors as stored,
and re-quantize Q2_K to our 2-bit format (group 128); the 7B files' Q6_K output head becomes 4-bit
on our side. The random TQ2_0 file's blocks hold code 3 (not ternary), so our side re-quantizes
it to ternary from the dequantized values.

Method (identical for both sides, the one ../shared/peers/tg_bench.py uses): prefill = one eval of a
fixed 64-token prompt; decode = 32 single-token evals fed fixed token ids (no sampling), time per
token. Every repeat runs ours, then llama.cpp (tg_bench.py in a subprocess, so its OpenMP runtime
never meets torch's), and medians are taken over repeats; ratios come from the same run.

Before timing, per model (llm.c's rule: never time a wrong answer):
  - check: our compiled decoder against our torch path, layer by layer on identical inputs
    (frugalnn.llm.check), on the first and the last layer: each within twice the layer's own
    int8-table error (the bound derived there). Beyond it the bench stops with CheckFailed.
  - accuracy of every raced side: NMSE of the last-position logits of the first 16 prompt tokens
    against our float32 model on the same file (its weights dequantized: the reference
    transformers' LlamaForCausalLM matches to 1e-6, tests/llm/test_oracle.py), when that fits in
    memory; and the bits per weight each side really holds in its linear layers (ours: codes,
    scales and zero terms of the LUT layout; llama.cpp: the file's tensors as stored).
A side that is absent or fails is a row "not measured: <reason>", never a gap.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark

N_PROMPT, N_GEN = 64, 32
CHECK_TOKENS = 16  # the prompt prefix the check and the accuracy figures run on
PEER_MODELS = {  # file name in --peer-models -> our --bits for it
    "llama2-7b-q2_k.gguf": "2",
    "llama2-7b-tq2_0.gguf": "ternary",
    "llama2-7b-q4_0.gguf": "4",
}


def add_arguments(p) -> None:
    p.add_argument("--peer-models", default=os.environ.get("FRUGALNN_PEER_MODELS", "/work/peers/models"),
                   help="folder with the Llama-2-7B-shaped files (llama2-7b-{q2_k,tq2_0,q4_0}.gguf) "
                        "written by ../shared/peers/gen_gguf.py; missing files are skipped")
    p.add_argument("--peers-dir", default=os.environ.get("FRUGALNN_PEERS_DIR"),
                   help="folder holding tg_bench.py (default: ../shared/peers next to the repository)")
    p.add_argument("--only", nargs="+", default=None, help="model keys to run: smollm2 and/or the 7B file names")
    p.add_argument("--no-peer", action="store_true", help="time our side only")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-RSS comparison (SmolLM2 at contexts of 2048 and 8192, each side in its own process)")
    p.add_argument("--n-gen", type=int, default=N_GEN)
    p.add_argument("--n-prompt", type=int, default=N_PROMPT)
    p.add_argument("--torch-path", action="store_true",
                   help="also time our decode with fast_decode=False (the torch path), same repeats")


def prompt_ids(n: int) -> list[int]:
    return [1] + [300 + (i * 7) % 900 for i in range(n - 1)]


def time_ours(model, n_prompt: int, n_gen: int, profile: bool = False) -> dict:
    """One repeat of tg_bench's method on our model: prefill seconds, decode seconds per token."""
    import torch

    from frugalnn.llm import time_linears

    model.setup_cache(n_prompt + n_gen + 16)
    prompt = torch.tensor([prompt_ids(n_prompt)])
    model(prompt, start=0)  # warm-up: pages weights in, lets the kernel tuner pick tiles for these shapes
    model(torch.tensor([[500]]), start=n_prompt)
    t0 = time.perf_counter()
    model(prompt, start=0, last_only=True)
    pp = time.perf_counter() - t0
    tok = 400
    with time_linears(model) if profile else _Null() as lin:
        t0 = time.perf_counter()
        for i in range(n_gen):
            model(torch.tensor([[tok]]), start=n_prompt + i)
            tok = 300 + (tok * 13 + i) % 900
        tg = (time.perf_counter() - t0) / n_gen
    return {"pp_s": pp, "tg_s": tg, "linear_share": (lin[0] / n_gen / tg) if profile else None}


class _Null:
    def __enter__(self):
        return [0.0]

    def __exit__(self, *a):
        return False


def peer_script(peers_dir: str | None) -> Path | None:
    candidates = [Path(peers_dir)] if peers_dir else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "peers" for p in here.parents[:6]] + [Path("/work/shared/peers")]
    for c in candidates:
        if (c / "tg_bench.py").is_file():
            return c / "tg_bench.py"
    return None


def time_peer(script: Path, path: Path, threads: int, n_prompt: int, n_gen: int) -> dict:
    cmd = [sys.executable, str(script), str(path), "--threads", str(threads), "--n-gen", str(n_gen),
           "--n-prompt", str(n_prompt), "--reps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"llama.cpp peer failed: {_last_line(res.stderr)}")
    lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    row = next(l for l in lines if "tg_tok_s" in l)
    return {"pp_s": n_prompt / row["pp_tok_s"], "tg_s": row["tg_ms_per_tok"] / 1e3, "version": lines[0]}


def _last_line(text: str) -> str:
    """The last line of a subprocess's stderr (the exception), for a one-line 'not measured' reason."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no error output"


def _timing(samples: list[float]) -> Timing:
    return Timing(statistics.median(samples), min(samples), samples, 1)


# llama.cpp's logits for a token list, run in a subprocess like tg_bench.py (its OpenMP never meets torch's)
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


def peer_logits(path: Path, ids: list[int], threads: int) -> np.ndarray:
    """llama.cpp's last-position logits for `ids` on the file at `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        res = subprocess.run([sys.executable, "-c", _PEER_LOGITS, str(path), str(threads), json.dumps(ids), str(out)],
                             capture_output=True, text=True, timeout=3600)
        if res.returncode != 0:
            raise RuntimeError(f"llama.cpp logits failed: {_last_line(res.stderr)}")
        return np.load(out)


def last_logits(model, ids: list[int], fast: bool) -> np.ndarray:
    """Last-position logits: prefill all but the last token, then one decode step on the chosen path."""
    import torch

    was = model.fast_decode
    model.fast_decode = fast
    try:
        model.setup_cache(len(ids))
        model(torch.tensor([ids[:-1]]), start=0)
        out = model(torch.tensor([ids[-1:]]), start=len(ids) - 1)
    finally:
        model.fast_decode = was
    return out.reshape(-1).numpy().copy()


def file_bits_per_weight(path: Path) -> float:
    """Bits per weight the file stores for the linear layers (blocks and output head), as llama.cpp holds them."""
    from frugalnn.llm.gguf_file import GGUFModelFile

    f = GGUFModelFile(path)
    head = "token_embd.weight" if f.tied_embeddings else "output.weight"
    tensors = [t for n, t in f.tensors.items() if (n.startswith("blk.") and len(t.shape) == 2) or n == head]
    return 8.0 * sum(int(t.n_bytes) for t in tensors) / sum(int(t.n_elements) for t in tensors)


def _fp32_fits(path: Path) -> tuple[bool, str]:
    """Whether our float32 model of the file fits in half the memory available now, and its size."""
    from frugalnn.llm.gguf_file import GGUFModelFile

    need = 4 * sum(int(t.n_elements) for t in GGUFModelFile(path).tensors.values())
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        avail = 0
    return need <= avail / 2, f"{need / 2**30:.1f} GiB at float32, {avail / 2**30:.1f} GiB available"


def check_decoder(model, case: str) -> float:
    """Layer-by-layer check of the compiled decoder against the torch path (frugalnn.llm.check) on the
    first and last layer; CheckFailed beyond twice a layer's table error. Returns the worst
    |fast - torch| / (2 x table error) (<= 1 passes)."""
    import torch

    from frugalnn.llm.check import check_layers

    n = model.config.n_layers
    checks = check_layers(model, torch.tensor([prompt_ids(CHECK_TOKENS)]), layers=sorted({0, n - 1}))
    worst = max(c.fast_vs_torch / (2 * c.table_error) if c.table_error > 0 else float("inf") for c in checks)
    return check_before_timing(case, "frugalnn compiled decoder", worst, 1.0,
                               metric="|fast - torch| / (2 x int8-table error), worst checked layer")


def accuracy(model, path: Path, threads: int, run_peer: bool, torch_path: bool) -> tuple[dict, dict]:
    """({impl: logits NMSE vs our fp32 model}, {impl: why not measured}) on the first CHECK_TOKENS prompt ids."""
    from frugalnn import llm as llama

    ids = prompt_ids(CHECK_TOKENS)
    fits, size = _fp32_fits(path)
    impls = ["frugalnn"] + (["frugalnn torch path"] if torch_path else []) + (["llama.cpp"] if run_peer else [])
    if not fits:
        return {}, {i: f"not measured: no float32 reference ({size})" for i in impls}
    ref = llama.load(path, bits="fp32", threads=threads, max_positions=CHECK_TOKENS)
    ref_logits = last_logits(ref, ids, fast=False)
    del ref
    errors, missing = {"frugalnn": nmse(last_logits(model, ids, fast=True), ref_logits)}, {}
    if torch_path:
        errors["frugalnn torch path"] = nmse(last_logits(model, ids, fast=False), ref_logits)
    if run_peer:
        try:
            errors["llama.cpp"] = nmse(peer_logits(path, ids, threads), ref_logits)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            missing["llama.cpp"] = f"not measured: {e}"
    return errors, missing


@benchmark("llm", "end-to-end prefill/decode tok/s: our Llama + LUT kernels vs llama.cpp on the same GGUF",
           add_arguments)
def bench_llm(args: BenchArgs) -> BenchReport:
    from frugalnn import info
    from frugalnn import llm as llama
    from frugalnn.data import smollm2_gguf

    o = args.options
    n_prompt, n_gen = o.get("n_prompt", N_PROMPT), o.get("n_gen", N_GEN)
    if n_prompt < 2 or n_gen < 1:
        raise ValueError(f"--n-prompt >= 2 and --n-gen >= 1 expected, got {n_prompt}, {n_gen}")
    if args.quick:
        n_gen = min(n_gen, 16)
    models = {"smollm2": (smollm2_gguf(), "4")}
    peer_dir = Path(o.get("peer_models") or "/nonexistent")
    if not args.quick:
        for name, bits in PEER_MODELS.items():
            if (peer_dir / name).is_file():
                models[name] = (peer_dir / name, bits)
    if o.get("only"):
        unknown = set(o["only"]) - {"smollm2", *PEER_MODELS}
        if unknown:
            raise ValueError(f"--only: unknown model keys {sorted(unknown)}")
        models = {k: v for k, v in models.items() if k in o["only"]}

    script = None if o.get("no_peer") else peer_script(o.get("peers_dir"))
    if o.get("no_peer"):
        peer_missing = "not run (--no-peer)"
    elif script is None:
        peer_missing = "../shared/peers/tg_bench.py not found (pass --peers-dir)"
    elif not _has_llama_cpp():
        peer_missing = "llama-cpp-python is not installed (optional `peers` extra)"
    else:
        peer_missing = ""
    run_peer = not peer_missing
    torch_path = bool(o.get("torch_path"))
    report = BenchReport("llm", baseline="llama.cpp" if run_peer else "frugalnn")
    report.meta["ours"] = {"kernel_isa": info.kernel_isa(), "torch_isa": info.torch_isa()}
    if not run_peer:
        report.meta["llama.cpp"] = {"not measured": peer_missing}
        report.notes.append(f"llama.cpp not measured: {peer_missing}.")
    missing = [n for n in PEER_MODELS if not (peer_dir / n).is_file()]
    if missing and not args.quick:
        report.notes.append(f"7B-shaped files not found in {peer_dir}: {', '.join(missing)} "
                            "(write them with ../shared/peers/gen_gguf.py; see docs/llm.md).")
    report.notes.append(f"prefill: one eval of a {n_prompt}-token prompt; decode: {n_gen} single-token evals, "
                        "time per token; medians over repeats, ours and llama.cpp interleaved. Checked before "
                        "timing: the compiled decoder vs the torch path layer by layer (first and last layer, "
                        "within 2x each layer's int8-table error; `check` = worst ratio, <= 1 passes). "
                        f"`logits nmse vs fp32`: last-position logits of the first {CHECK_TOKENS} prompt tokens "
                        "against our float32 model of the same file; `bits/weight`: what each side holds in its "
                        "linear layers.")
    for key, (path, bits) in models.items():
        # gen_gguf.py fills TQ2_0 blocks with random bytes, code 3 included, which is not ternary:
        # llama.cpp reads it as +2, our LUTWeight.from_gguf rejects it, so our side re-quantizes
        # the dequantized tensor to ternary (same shapes, same bits per weight class).
        direct = not key.endswith("tq2_0.gguf")
        t0 = time.perf_counter()
        model = llama.load(path, bits=bits, threads=args.threads[0], max_positions=n_prompt + n_gen + 16,
                           gguf_direct=direct)
        load_s = time.perf_counter() - t0
        file_type = "Q4_1" if key == "smollm2" else key.split("-")[-1][:-5].upper()
        label = f"{key} ({file_type}; ours {bits}{'' if bits == 'ternary' else '-bit'})"
        check = check_decoder(model, label)
        errors, not_accurate = accuracy(model, path, args.threads[0], run_peer, torch_path)
        held = {"frugalnn": model.weight_bits(), "frugalnn torch path": model.weight_bits(),
                "llama.cpp": file_bits_per_weight(path)}
        for threads in args.threads:
            model.set_threads(threads)
            ours, peer, torch_tg = {"pp": [], "tg": []}, {"pp": [], "tg": []}, []
            peer_failed = ""
            for _ in range(args.repeats):
                r = time_ours(model, n_prompt, n_gen)
                ours["pp"].append(r["pp_s"])
                ours["tg"].append(r["tg_s"])
                if torch_path:
                    model.fast_decode = False
                    try:
                        torch_tg.append(time_ours(model, n_prompt, n_gen)["tg_s"])
                    finally:
                        model.fast_decode = True
                if run_peer and not peer_failed:
                    try:
                        p = time_peer(script, path, threads, n_prompt, n_gen)
                    except (RuntimeError, OSError, ValueError, StopIteration, subprocess.TimeoutExpired) as e:
                        peer_failed = f"{type(e).__name__}: {e}"  # a failed peer is a visible row
                        continue
                    peer["pp"].append(p["pp_s"])
                    peer["tg"].append(p["tg_s"])
                    report.meta.setdefault("llama_cpp", p["version"])
            share = time_ours(model, n_prompt, n_gen, profile=True)["linear_share"]
            why = model.fast_decode_reason()  # the cache is set up now, so this is the timed runs' path
            if why:
                report.notes.append(f"{key} threads={threads}: decode took the torch path ({why}).")
            for phase, n in (("decode", 1), ("prefill", n_prompt)):
                ph = "tg" if phase == "decode" else "pp"
                timings = {"frugalnn": _timing(ours[ph])}
                if phase == "decode" and torch_tg:
                    timings["frugalnn torch path"] = _timing(torch_tg)
                if peer[ph] and not peer_failed:
                    timings["llama.cpp"] = _timing(peer[ph])
                case = f"{label} {phase}"
                report.add_case(case, threads, timings)
                for row in report.rows[-len(timings):]:
                    row.extra["tok/s"] = n / (row.median_ms / 1e3)
                    row.extra["bits/weight"] = held[row.impl]
                    row.extra["logits nmse vs fp32"] = errors.get(row.impl, not_accurate.get(row.impl, "-"))
                    if row.impl == "frugalnn":
                        row.extra["check"] = check
                        row.extra["weights MB"] = model.weight_bytes() / 1e6
                        if phase == "decode":
                            row.extra["linear share"] = f"{share:.0%}"
                            row.extra["load s"] = load_s
                if "llama.cpp" not in timings:
                    report.add_not_measured(case, "llama.cpp", threads, peer_failed or peer_missing)
            print(f"[bench llm] {label} threads={threads} done", file=sys.stderr, flush=True)
        del model
    if not o.get("no_memory") and "smollm2" in models:
        memory_rows(report, models["smollm2"][0], models["smollm2"][1], run_peer, peer_missing, args.threads[0])
    return report


MEMORY_CONTEXTS = (2048, 8192)
MEMORY_TARGET = 1.2  # issue 18: peak RSS at most 1.2x llama.cpp's at the same context


def memory_rows(report, path: Path, bits: str, run_peer: bool, peer_missing: str, threads: int) -> None:
    """Peak RSS of a 64-token prompt + 16 generated tokens, each side in a fresh process (frugalnn.llm.memory),
    at each context length in MEMORY_CONTEXTS; into report.meta["peak_rss_mib"] and one note per context."""
    from frugalnn import llm as llama
    from frugalnn.llm import memory

    llama.load_tokenizer(path)  # build the cached tokenizer first: a first-ever build is not what a user pays each run
    table: dict = {}
    for n_ctx in MEMORY_CONTEXTS:
        row: dict = {}
        try:
            row["frugalnn"] = memory.peak_rss_ours(path, bits, n_ctx, threads=threads)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            row["frugalnn"] = f"not measured: {e}"
        if run_peer:
            try:
                row["llama.cpp"] = memory.peak_rss_peer(path, n_ctx, threads=threads)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                row["llama.cpp"] = f"not measured: {e}"
        else:
            row["llama.cpp"] = f"not measured: {peer_missing}"
        ours, peer = row["frugalnn"], row["llama.cpp"]
        if isinstance(ours, float) and isinstance(peer, float):
            row["ratio"] = ours / peer
            verdict = "meets" if row["ratio"] <= MEMORY_TARGET else "misses"
            text = f"{ours:.0f} MiB vs llama.cpp {peer:.0f} MiB = {row['ratio']:.2f}x ({verdict} the <= {MEMORY_TARGET}x target)"
        else:
            text = f"ours {ours if isinstance(ours, str) else f'{ours:.0f} MiB'}, llama.cpp " \
                   f"{peer if isinstance(peer, str) else f'{peer:.0f} MiB'}"
        table[n_ctx] = row
        report.notes.append(f"peak RSS, {Path(path).name} at a context of {n_ctx} (64-token prompt + 16 tokens, "
                            f"fresh process each, tokenizer included on our side): {text}.")
    report.meta["peak_rss_mib"] = table


def _has_llama_cpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
