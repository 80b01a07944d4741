"""Threads: `threads=None` means all cores everywhere, and torch's intra-op thread count is changed
only inside `torch_threads(n)`, which puts it back (benchmarks and experiments time at fixed counts).

A thread count is 1..MAX_THREADS, where MAX_THREADS = max(256, 4 x hardware threads)
(`max_threads()`, the same number the compiled core enforces, csrc/common/threads.h). Why a cap:
the core's pool keeps its workers for the life of the process, so an absurd count meant
thousands of idle OS threads; past the cores, more threads only oversubscribe them. The floor of
256 keeps a count that is valid on one machine valid on any other. Above it: ValueError, the
same on every path (`threads_arg`). A call that asks for more than 4 x hardware threads runs on
that many (the pool's size; no kernel's result depends on its thread count)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from frugalnn._arrays import max_threads, threads_arg

__all__ = ["max_threads", "resolve_threads", "torch_threads"]


def resolve_threads(threads: int | None) -> int:
    """A positive thread count: `threads`, or every hardware thread for None (ValueError otherwise)."""
    from frugalnn import _core

    t = threads_arg(threads)
    return _core.hardware_threads() if t == -1 else t


@contextmanager
def torch_threads(threads: int | None, flush_denormal: bool = False) -> Iterator[int]:
    """Run a block with torch at `threads` intra-op threads (None: all cores), optionally with denormals
    flushed; both are restored on exit. Yields the thread count in force."""
    import torch

    n = resolve_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    flushed = torch.set_flush_denormal(True) if flush_denormal else False
    try:
        yield n
    finally:
        torch.set_num_threads(previous)
        if flushed:
            torch.set_flush_denormal(False)
