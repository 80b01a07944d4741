"""Checkpoints that are either whole or refused: atomic writes, a checksum, the last few kept.

File layout (little-endian):  magic (16 bytes) | payload length (u64) | sha256(payload) (32 bytes) | payload
where the payload is `torch.save` of a plain dict, loaded back with `weights_only=True` (no pickled code).

A write goes to a temporary file in the same directory, is fsync'ed, then `os.replace`d over its final
name and the directory is fsync'ed: a crash at any point leaves either the old set of checkpoints or
the old set plus the complete new one. A file whose length or checksum does not match is refused with
CheckpointError; `fit` then falls back to the previous checkpoint, which is why `keep >= 2` by default.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from pathlib import Path
from typing import Any

MAGIC = b"frugalnn-ckpt\x00v1"
_HEADER = struct.Struct("<16sQ32s")
_NAME = re.compile(r"^ckpt-(\d{9,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupted or not a frugalnn checkpoint; it was not loaded."""


def checkpoint_name(step: int) -> str:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected an int >= 0, got {step!r}")
    return f"ckpt-{step:09d}.pt"


def list_checkpoints(directory) -> list[Path]:
    """The checkpoints in `directory`, oldest first (by step, from the file name)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], directory, step: int, keep: int = 2) -> Path:
    """Write `state` as checkpoint `step` in `directory` atomically; keep the newest `keep` checkpoints."""
    import torch

    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep: expected an int >= 1, got {keep!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    final = d / checkpoint_name(step)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = _HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest())
    tmp = d / f".{final.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(d)
    # Pruning only after the new file is durable: the previous checkpoint survives any crash before.
    for old in list_checkpoints(d)[:-keep]:
        old.unlink(missing_ok=True)
    for stale in d.glob(".ckpt-*.pt.tmp-*"):  # left by a process killed mid-write
        if not stale.name.endswith(f"-{os.getpid()}"):
            stale.unlink(missing_ok=True)
    return final


def load_checkpoint(path) -> dict[str, Any]:
    """The state dict saved in `path`; CheckpointError if the file is truncated or corrupted."""
    import torch

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read the checkpoint ({e})") from e
    if len(data) < _HEADER.size:
        raise CheckpointError(f"{p}: truncated checkpoint ({len(data)} bytes, the header alone is {_HEADER.size})")
    magic, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{p}: not a frugalnn checkpoint (magic {magic!r}, expected {MAGIC!r})")
    payload = data[_HEADER.size:]
    if len(payload) < length:
        raise CheckpointError(f"{p}: truncated checkpoint ({len(payload)} of {length} payload bytes present)")
    if len(payload) > length:
        raise CheckpointError(f"{p}: corrupted checkpoint ({len(payload) - length} bytes after the declared end)")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{p}: corrupted checkpoint (sha256 of the payload does not match the header)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # a valid checksum over a payload torch cannot read: written by something else
        raise CheckpointError(f"{p}: unreadable checkpoint payload ({type(e).__name__}: {e})") from e
