"""Token generation: sampling (greedy / temperature / top-p), a session that keeps the KV cache
across calls (chat turns re-use the cached prefix), timing of prefill vs decode, and the split
of decode time between the linear-layer kernels and everything else."""
from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import dataclass
from typing import Callable

import torch

from frugalnn.llm.model import Llama


@dataclass
class Sampling:
    """temperature 0 = greedy; otherwise softmax(logits / temperature) restricted to the top-p nucleus."""
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        if not (0.0 <= self.temperature < float("inf")):  # NaN fails both comparisons
            raise ValueError(f"temperature: expected a finite number >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: expected a value in (0, 1], got {self.top_p}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**64):
            raise ValueError(f"seed: expected an integer in 0..2**64-1, got {self.seed!r}")

    def generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(self.seed)


def sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None = None) -> int:
    """One token id from logits [vocab]."""
    if sampling.temperature == 0.0:
        return int(torch.argmax(logits))
    # Shift by the maximum before dividing, in float64: a tiny temperature (1e-40) then sends every token but the
    # best ones to -inf, i.e. greedy, instead of overflowing to inf - inf = NaN probabilities.
    z = logits.double()
    z = (z - z.max()) / sampling.temperature
    probs = torch.softmax(z, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p, and always the top token: a top_p below the
        # float resolution (1e-300) keeps that token alone rather than nothing
        keep = (torch.cumsum(sorted_p, dim=-1) - sorted_p) < sampling.top_p
        keep[0] = True
        sorted_p = sorted_p * keep
        choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class GenerationStats:
    prompt_tokens: int = 0  # tokens prefilled this call (after re-using the cached prefix)
    reused_tokens: int = 0
    new_tokens: int = 0
    prefill_s: float = 0.0
    decode_steps: int = 0
    decode_s: float = 0.0
    stop: str = ""  # "eos" | "max_tokens" | "context" | "interrupted"
    peak_rss_mib: float = 0.0
    linear_s: float | None = None  # time inside linear layers during decode (profile=True)

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else float("nan")

    @property
    def decode_tok_s(self) -> float:
        return self.decode_steps / self.decode_s if self.decode_s > 0 else float("nan")

    def summary(self) -> str:
        s = (f"prefill {self.prompt_tokens} tok in {self.prefill_s:.2f}s ({self.prefill_tok_s:.1f} tok/s), "
             f"decode {self.decode_steps} tok in {self.decode_s:.2f}s ({self.decode_tok_s:.1f} tok/s), "
             f"peak memory {self.peak_rss_mib:.0f} MiB, stop: {self.stop}")
        if self.linear_s is not None and self.decode_s > 0:
            share = self.linear_s / self.decode_s
            s += f"; decode time in linear kernels {share:.0%}, everything else {1 - share:.0%}"
        return s


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


class LinearTimer:
    """Seconds spent inside linear layers, read and reset as `timer[0]` (the layout callers used when
    this was a one-element list): torch-path calls are timed by wrappers around each linear layer's
    forward, decode steps on the compiled decoder by the decoder itself."""

    def __init__(self):
        self.seconds = 0.0

    def add(self, seconds: float) -> None:
        self.seconds += seconds

    def __getitem__(self, i: int) -> float:
        if i != 0:
            raise IndexError(i)
        return self.seconds

    def __setitem__(self, i: int, value: float) -> None:
        if i != 0:
            raise IndexError(i)
        self.seconds = value


@contextlib.contextmanager
def time_linears(model: Llama):
    """Accumulate wall time spent inside every linear layer's forward (LUTLinear or DenseLinear, the
    output head included); yields a LinearTimer (`timer[0]` = seconds so far)."""
    timer = LinearTimer()
    patched = []
    for lin in model.linears().values():
        inner = lin.forward

        def timed(x, _inner=inner):
            t0 = time.perf_counter()
            y = _inner(x)
            timer.add(time.perf_counter() - t0)
            return y

        timed._frugalnn_inner = inner  # lets the fast path see that the real forward is still in place
        lin.__dict__["forward"] = timed  # no attribute assignment: profiling must not rebuild the fast path
        patched.append((lin, inner))
    model.__dict__["_linear_timer"] = timer
    try:
        yield timer
    finally:
        model.__dict__.pop("_linear_timer", None)
        for lin, inner in patched:
            lin.__dict__["forward"] = inner


class Session:
    """Holds a model, its KV cache and the tokens whose k/v it holds.

    The cache grows with the conversation, up to `max_len` positions (default: the model's context): each call
    makes room for its prompt and max_new_tokens, at least doubling, keeping what the cache holds. A short chat
    with SmolLM2 so holds a few MB of k/v instead of the 377 MB an 8192-position cache takes up front.
    """

    FIRST_CACHE = 256  # positions allocated by the first call at least

    def __init__(self, model: Llama, max_len: int | None = None):
        self.model = model
        self.max_len = max_len or model.max_positions
        if not 1 <= self.max_len <= model.max_positions:
            raise ValueError(f"max_len: expected 1..{model.max_positions} (the model's context), got {self.max_len}")
        self.tokens: list[int] = []

    def reserve(self, positions: int) -> None:
        """Make the cache hold at least min(positions, max_len) positions, keeping its contents."""
        need = min(positions, self.max_len)
        have = self.model.cache_len
        if need > have:
            self.model.setup_cache(min(self.max_len, max(need, 2 * have, self.FIRST_CACHE)), keep=True)

    def generate(self, prompt_ids: list[int], max_new_tokens: int, sampling: Sampling | None = None,
                 stop_ids: set[int] | frozenset = frozenset(), on_token: Callable[[int], None] | None = None,
                 profile: bool = False) -> tuple[list[int], GenerationStats]:
        """Continue from `prompt_ids` (the whole context so far); returns (new ids, stats).

        The longest prefix shared with the cached tokens is not recomputed. Ctrl-C stops the
        loop cleanly: what was generated so far is returned with stop == "interrupted".
        """
        sampling = sampling or Sampling()
        if not prompt_ids:
            raise ValueError("prompt: expected at least one token")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected >= 0, got {max_new_tokens}")
        if len(prompt_ids) >= self.max_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit the context of {self.max_len} "
                             "tokens (it needs room for at least one new token)")
        gen = sampling.generator()
        stats = GenerationStats()
        self.reserve(len(prompt_ids) + max_new_tokens)
        reuse = _common_prefix(self.tokens, prompt_ids)
        reuse = min(reuse, len(prompt_ids) - 1)  # at least one token must run to produce logits
        self.tokens = self.tokens[:reuse]
        todo = prompt_ids[reuse:]
        stats.reused_tokens, stats.prompt_tokens = reuse, len(todo)
        out: list[int] = []
        timer = time_linears(self.model) if profile else contextlib.nullcontext([0.0])
        with timer as linear_time:
            try:
                t0 = time.perf_counter()
                logits = self.model(torch.tensor([todo]), start=reuse, last_only=True)
                self.tokens.extend(todo)
                stats.prefill_s = time.perf_counter() - t0
                linear_time[0] = 0.0
                while True:
                    tok = sample(logits[0, -1], sampling, gen)
                    out.append(tok)
                    stats.new_tokens += 1
                    if on_token is not None:
                        on_token(tok)
                    if tok in stop_ids:
                        stats.stop = "eos"
                        break
                    if len(out) >= max_new_tokens:
                        stats.stop = "max_tokens"
                        break
                    if len(self.tokens) >= min(self.max_len, self.model.cache_len):  # no slot left for the next step
                        stats.stop = "context"
                        break
                    t0 = time.perf_counter()
                    logits = self.model(torch.tensor([[tok]]), start=len(self.tokens))
                    stats.decode_s += time.perf_counter() - t0
                    stats.decode_steps += 1
                    self.tokens.append(tok)
            except KeyboardInterrupt:
                stats.stop = "interrupted"
        if profile:
            stats.linear_s = linear_time[0]
        stats.peak_rss_mib = peak_rss_mib()
        return out, stats


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def generate(model: Llama, prompt_ids: list[int], max_new_tokens: int = 32, sampling: Sampling | None = None,
             stop_ids: set[int] | frozenset = frozenset(), on_token=None, profile: bool = False):
    """One-shot generation with a fresh cache sized for this prompt; returns (new ids, stats)."""
    room = min(model.max_positions, len(prompt_ids) + max(max_new_tokens, 1))
    if len(prompt_ids) >= model.max_positions:
        raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit the context of "
                         f"{model.max_positions} tokens")
    return Session(model, room).generate(prompt_ids, max_new_tokens, sampling, stop_ids, on_token, profile)
