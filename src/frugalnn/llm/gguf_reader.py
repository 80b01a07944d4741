"""A lean GGUF reader: the metadata values on demand, the tensors as views of one read-only memory map.

Why not `gguf.GGUFReader`: it turns every metadata element into numpy views up front. SmolLM2's vocabulary
(49,152 tokens and 48,900 merges) becomes about 245,000 small arrays, 160-300 MB of Python objects for a 138 MB
file, before a single weight is read. Here a metadata value is parsed when it is asked for; an array is kept
as (offset, count, element type) and the vocabulary, which only the tokenizer builder reads (from the file,
through transformers), is never parsed at all. The tensors are the same as gguf's: `.name`, `.tensor_type`,
`.shape` (GGUF order, innermost first), `.data` (float types as float arrays, quantized types as uint8 rows, as
gguf.GGUFReader gives them) and `.data_offset`, so `gguf.quants.dequantize` and `LUTWeight.from_gguf` take them.

Every count and size comes from the file, so each is checked against the bytes that are there before it is used:
a damaged file is a ValueError naming what is wrong and where, never a huge allocation or a read past the end.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian files, versions 2 and 3).
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# value type id -> (struct format, numpy dtype) for the fixed-size scalars; 8 = string, 9 = array
_SCALARS = {0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
            4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
            10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64)}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class LazyArray:
    """A metadata array not yet parsed: where it is, how many elements and of which type."""
    offset: int
    count: int
    element_type: int


@dataclass
class Tensor:
    name: str
    tensor_type: object   # gguf.GGMLQuantizationType
    shape: np.ndarray     # GGUF order: the innermost (fastest) dimension first
    n_elements: int
    n_bytes: int
    data_offset: int      # absolute, in the file
    data: np.ndarray


class _Cursor:
    """Reads little-endian values from the file's bytes, each read checked against the end."""

    def __init__(self, buf: np.ndarray, path: Path):
        self.buf, self.path, self.at = buf, path, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.at + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated at byte {self.at}: {what} needs {n} bytes, "
                             f"{len(self.buf) - self.at} remain")

    def scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        self.need(size, what)
        value = struct.unpack_from(fmt, self.buf, self.at)[0]
        self.at += size
        return value

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = self.buf[self.at:self.at + n].tobytes()
        self.at += n
        return out

    def string(self, what: str) -> bytes:
        return self.raw(self.scalar("<Q", f"{what} length"), what)


class GGUFReader:
    """`fields`: key -> parsed scalar/string, or LazyArray; `value(key)`; `tensors`: list of Tensor."""

    def __init__(self, path: str | Path):
        import gguf

        self.path = Path(path)
        self.buf = np.memmap(self.path, dtype=np.uint8, mode="r") if self.path.stat().st_size else np.zeros(0, np.uint8)
        c = _Cursor(self.buf, self.path)
        if c.raw(4, "magic") != MAGIC:
            raise ValueError(f"{self.path}: not a GGUF file (no GGUF magic)")
        self.version = c.scalar("<I", "version")
        if self.version not in VERSIONS:
            raise ValueError(f"{self.path}: GGUF version {self.version} is not supported (versions {VERSIONS}; "
                             "a big-endian file shows up as a huge version)")
        n_tensors, n_kv = c.scalar("<Q", "tensor count"), c.scalar("<Q", "metadata count")
        # each metadata pair and tensor info takes at least 12 / 24 bytes: bound the counts by the file first
        for what, count, least in (("metadata count", n_kv, 12), ("tensor count", n_tensors, 24)):
            if count * least > len(self.buf):
                raise ValueError(f"{self.path}: {what} {count} cannot fit in a file of {len(self.buf)} bytes")
        self.fields: dict[str, object] = {}
        for i in range(n_kv):
            key = self._text(c.string(f"metadata key {i}"), f"metadata key {i}")
            vtype = c.scalar("<I", f"type of {key!r}")
            self.fields[key] = self._value(c, vtype, key)
        infos = []
        for i in range(n_tensors):
            name = self._text(c.string(f"tensor {i} name"), f"tensor {i} name")
            n_dims = c.scalar("<I", f"tensor {name!r} rank")
            if n_dims > 8:
                raise ValueError(f"{self.path}: tensor {name!r} has rank {n_dims} (at most 8)")
            dims = [c.scalar("<Q", f"tensor {name!r} shape") for _ in range(n_dims)]
            type_id = c.scalar("<I", f"tensor {name!r} type")
            offset = c.scalar("<Q", f"tensor {name!r} offset")
            infos.append((name, dims, type_id, offset))
        alignment = self.value("general.alignment", DEFAULT_ALIGNMENT)
        if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
            raise ValueError(f"{self.path}: general.alignment must be a power of two, got {alignment!r}")
        start = -(-c.at // alignment) * alignment
        self.tensors = [self._tensor(gguf, start, *info) for info in infos]

    def release_pages(self) -> None:
        """Drop the file's pages from this process's resident memory (they are re-read from the file when
        touched again): after a load has converted the weights it keeps, the pages it read are only RSS that
        counts against the process (SmolLM2: ~100 MB). Nothing is lost; a no-op where madvise is missing."""
        mm = getattr(self.buf, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED)

    # ---- metadata --------------------------------------------------------------------------------
    def _text(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{self.path}: {what} is not valid UTF-8 ({e.reason} at byte {e.start})") from None

    def _value(self, c: _Cursor, vtype: int, key: str):
        if vtype in _SCALARS:
            return c.scalar(_SCALARS[vtype][0], f"value of {key!r}")
        if vtype == STRING:
            raw = c.string(f"value of {key!r}")
            return _Undecoded(raw)  # decoded (and its UTF-8 checked) when asked for
        if vtype == ARRAY:
            etype, count = c.scalar("<I", f"element type of {key!r}"), c.scalar("<Q", f"length of {key!r}")
            arr = LazyArray(c.at, count, etype)
            if etype in _SCALARS:
                c.need(count * np.dtype(_SCALARS[etype][1]).itemsize, f"array {key!r}")
                c.at += count * np.dtype(_SCALARS[etype][1]).itemsize
            elif etype == STRING:
                if count * 8 > len(c.buf) - c.at:
                    raise ValueError(f"{self.path}: array {key!r} of {count} strings cannot fit in the file")
                for _ in range(count):  # only the lengths are read, to find where the next field starts
                    n = c.scalar("<Q", f"string in {key!r}")
                    c.need(n, f"string in {key!r}")
                    c.at += n
            else:
                raise ValueError(f"{self.path}: array {key!r} has element type {etype} (nested arrays are not supported)")
            return arr
        raise ValueError(f"{self.path}: metadata key {key!r} has unknown value type {vtype}")

    def value(self, key: str, default=None):
        """The value of `key`: int/float/bool/str, or a list for an array (parsed now); `default` if absent."""
        if key not in self.fields:
            return default
        v = self.fields[key]
        if isinstance(v, _Undecoded):
            return self._text(v.raw, f"metadata key {key!r}")
        if isinstance(v, LazyArray):
            return self._array(v, key)
        return v

    def array_length(self, key: str) -> int | None:
        v = self.fields.get(key)
        return v.count if isinstance(v, LazyArray) else None

    def _array(self, a: LazyArray, key: str) -> list:
        if a.element_type in _SCALARS:
            return np.frombuffer(self.buf, _SCALARS[a.element_type][1], a.count, a.offset).tolist()
        c = _Cursor(self.buf, self.path)
        c.at = a.offset
        return [self._text(c.string(f"string in {key!r}"), f"string in {key!r}") for _ in range(a.count)]

    # ---- tensors ---------------------------------------------------------------------------------
    def _tensor(self, gguf, start: int, name: str, dims: list[int], type_id: int, offset: int) -> Tensor:
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise ValueError(f"{self.path}: tensor {name!r} has unknown type id {type_id}") from None
        n = 1
        for d in dims:  # Python ints: no wrap-around
            n *= d
        if dims and dims[0] % block:
            raise ValueError(f"{self.path}: tensor {name!r}: rows of {dims[0]} are not whole {qtype.name} blocks of {block}")
        n_bytes = n // block * type_size
        begin = start + offset
        if begin + n_bytes > len(self.buf):
            raise ValueError(f"{self.path}: tensor {name!r} ({qtype.name}, shape {dims}) needs bytes {begin}.."
                             f"{begin + n_bytes}, but the file ends at {len(self.buf)} (truncated?)")
        raw = self.buf[begin:begin + n_bytes]
        rows = list(reversed(dims)) or [1]
        if qtype.name in _FLOAT_TYPES:
            data = raw.view(_FLOAT_TYPES[qtype.name]).reshape(rows)
        else:  # quantized: one row of blocks per row, as gguf.GGUFReader gives them
            data = raw.reshape(*rows[:-1], rows[-1] // block * type_size)
        return Tensor(name, qtype, np.array(dims, dtype=np.uint64), n, n_bytes, begin, data)


class _Undecoded:
    __slots__ = ("raw",)

    def __init__(self, raw: bytes):
        self.raw = raw


_FLOAT_TYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8, "I16": np.int16,
                "I32": np.int32, "I64": np.int64}
