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
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark

N_PROMPT, N_GEN = 64, 32
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
        raise RuntimeError(f"llama.cpp peer failed: {res.stderr.strip()[-400:]}")
    lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    row = next(l for l in lines if "tg_tok_s" in l)
    return {"pp_s": n_prompt / row["pp_tok_s"], "tg_s": row["tg_ms_per_tok"] / 1e3, "version": lines[0]}


def _timing(samples: list[float]) -> Timing:
    return Timing(statistics.median(samples), min(samples), samples, 1)


@benchmark("llm", "end-to-end prefill/decode tok/s: our Llama + LUT kernels vs llama.cpp on the same GGUF",
           add_arguments)
def bench_llm(args: BenchArgs) -> BenchReport:
    from frugalnn.data import smollm2_gguf
    from frugalnn import llm as llama

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
    has_llama_cpp = _has_llama_cpp()
    report = BenchReport("llm", baseline="llama.cpp" if script and has_llama_cpp else "frugalnn")
    if o.get("no_peer"):
        report.notes.append("llama.cpp not run (--no-peer).")
    elif script is None:
        report.notes.append("llama.cpp skipped: ../shared/peers/tg_bench.py not found (pass --peers-dir).")
    elif not has_llama_cpp:
        report.notes.append("llama.cpp skipped: llama-cpp-python is not installed (optional `peers` extra).")
    run_peer = bool(script) and has_llama_cpp
    missing = [n for n in PEER_MODELS if not (peer_dir / n).is_file()]
    if missing and not args.quick:
        report.notes.append(f"7B-shaped files not found in {peer_dir}: {', '.join(missing)} "
                            "(write them with ../shared/peers/gen_gguf.py; see docs/llm.md).")
    report.notes.append(f"prefill: one eval of a {n_prompt}-token prompt; decode: {n_gen} single-token evals, "
                        "time per token; medians over repeats, ours and llama.cpp interleaved.")
    for key, (path, bits) in models.items():
        # gen_gguf.py fills TQ2_0 blocks with random bytes, code 3 included, which is not ternary:
        # llama.cpp reads it as +2, our LUTWeight.from_gguf rejects it, so our side re-quantizes
        # the dequantized tensor to ternary (same shapes, same bits per weight class).
        direct = not key.endswith("tq2_0.gguf")
        t0 = time.perf_counter()
        model = llama.load(path, bits=bits, threads=args.threads[0], max_positions=n_prompt + n_gen + 16,
                           gguf_direct=direct)
        load_s = time.perf_counter() - t0
        for threads in args.threads:
            model.set_threads(threads)
            ours = {"pp": [], "tg": []}
            peer = {"pp": [], "tg": []}
            torch_tg = []
            for _ in range(args.repeats):
                r = time_ours(model, n_prompt, n_gen)
                ours["pp"].append(r["pp_s"])
                ours["tg"].append(r["tg_s"])
                if o.get("torch_path"):
                    model.fast_decode = False
                    try:
                        torch_tg.append(time_ours(model, n_prompt, n_gen)["tg_s"])
                    finally:
                        model.fast_decode = True
                if run_peer:
                    p = time_peer(script, path, threads, n_prompt, n_gen)
                    peer["pp"].append(p["pp_s"])
                    peer["tg"].append(p["tg_s"])
                    report.meta.setdefault("llama_cpp", p["version"])
            share = time_ours(model, n_prompt, n_gen, profile=True)["linear_share"]
            why = model.fast_decode_reason()  # the cache is set up now, so this is the timed runs' path
            if why:
                report.notes.append(f"{key} threads={threads}: decode took the torch path ({why}).")
            file_type = "Q4_1" if key == "smollm2" else key.split("-")[-1][:-5].upper()
            label = f"{key} ({file_type}; ours {bits}{'' if bits == 'ternary' else '-bit'})"
            for phase, n in (("decode", 1), ("prefill", n_prompt)):
                ph = "tg" if phase == "decode" else "pp"
                timings = {"frugalnn": _timing(ours[ph])}
                if phase == "decode" and torch_tg:
                    timings["frugalnn torch path"] = _timing(torch_tg)
                if run_peer:
                    timings["llama.cpp"] = _timing(peer[ph])
                report.add_case(f"{label} {phase}", threads, timings)
                for row in report.rows[-len(timings):]:
                    row.extra["tok/s"] = n / (row.median_ms / 1e3)
                    if row.impl == "frugalnn":
                        row.extra["weights MB"] = model.weight_bytes() / 1e6
                        if phase == "decode":
                            row.extra["linear share"] = f"{share:.0%}"
                            row.extra["load s"] = load_s
            print(f"[bench llm] {label} threads={threads} done", file=sys.stderr, flush=True)
        del model
    return report


def _has_llama_cpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
