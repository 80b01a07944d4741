"""Threads: `threads=None` means all cores everywhere, and torch's intra-op thread count is changed
only inside `torch_threads(n)`, which puts it back (benchmarks and experiments time at fixed counts)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from frugalnn._arrays import threads_arg


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
