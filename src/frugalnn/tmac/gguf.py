"""GGUF block formats decoded straight to (codes, scales, offsets), without a float32 weight copy.

Each one-level llama.cpp type maps losslessly onto w = q * scale + offset with one (scale, offset)
per block: Q4_0 (w = (q - 8) d), Q4_1 (w = q d + m), Q5_0 (w = (q - 16) d), Q5_1 (w = q d + m),
Q8_0 (w = q d, q int8), TQ1_0 and TQ2_0 (w = (q - 1) d, ternary; TQ1_0 packs 5 trits per byte in
base 3). The fp16 block scales widen to float32 exactly. The K-quants (Q2_K..Q6_K) keep their
two-level scales: `decode` returns a kquants.KQuantBlocks for them (see kquants.py).
"""
from __future__ import annotations

import numpy as np

from frugalnn.tmac.kquants import KQUANTS, QK, SPECS, decode_blocks

# name -> (block elements, block bytes, bits)
FORMATS = {"Q4_0": (32, 18, 4), "Q4_1": (32, 20, 4), "Q5_0": (32, 22, 5), "Q5_1": (32, 24, 5),
           "Q8_0": (32, 34, 8), "TQ1_0": (256, 54, 2), "TQ2_0": (256, 66, 2)}
FORMATS.update({name: (QK, spec[0], spec[1]) for name, spec in KQUANTS.items()})
# the command that turns a file of a type we do not read into one we do (llama.cpp's quantizer)
CONVERT_HINT = ("llama-quantize --allow-requantize IN.gguf OUT.gguf Q4_K_M (llama.cpp; or Q4_0 / Q8_0), "
                "or load it with --bits 4 to re-quantize from float")


def _type_name(qtype) -> str:
    """The type's name from a gguf.GGMLQuantizationType, a name, or an int type id (an unknown id or
    any other value comes back as its text, which the caller reports as unsupported)."""
    name = getattr(qtype, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(qtype, str):
        return qtype.upper()
    if isinstance(qtype, (int, np.integer)) and not isinstance(qtype, bool):  # no int() of 2.5 -> Q4_0
        try:
            import gguf

            return gguf.GGMLQuantizationType(int(qtype)).name
        except (ImportError, ValueError):
            pass
    return repr(qtype)


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[..., start:start + 2].copy().view(np.float16)[..., 0].astype(np.float32)


def _raw_bytes(data) -> np.ndarray:
    """Flat uint8 view of raw tensor data: bytes, bytearray, memoryview, or a numpy array (any
    plain dtype, read as its bytes; a gguf reader hands out uint8 [rows, bytes])."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        return np.frombuffer(view.cast("B"), np.uint8)  # no copy; read-only for bytes
    if isinstance(data, np.ndarray):
        if data.dtype.hasobject or data.dtype.itemsize == 0:
            raise TypeError(f"from_gguf: raw data of dtype {data.dtype} has no bytes to read")
        flat = np.ascontiguousarray(data).reshape(-1)
        return flat if flat.dtype == np.uint8 else flat.view(np.uint8)
    raise TypeError(f"from_gguf: raw data must be bytes, bytearray, memoryview or a numpy array, "
                    f"got {type(data).__name__}")


def _shape(shape, label: str) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{label}: shape must be (M, K), got {shape!r}") from None
    if len(dims) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in dims):
        raise TypeError(f"{label}: shape must be two ints (M, K), got {shape!r}")
    return int(dims[0]), int(dims[1])


def decode(tensor, *, qtype=None, shape=None, fp16: bool = False):
    """-> (codes [M, K] uint8, scales [M, K/B], offsets [M, K/B], bits, block, kind, type name) for the
    one-level types, a KQuantBlocks for the K-quants (and, with fp16=True, for every type whose fp16
    scales the kernel can keep: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)."""
    if qtype is None and hasattr(tensor, "tensor_type"):
        qtype, data = tensor.tensor_type, tensor.data
        ne = [int(v) for v in tensor.shape]  # GGUF order: innermost (K) first
        if len(ne) != 2:
            raise ValueError(f"tensor {getattr(tensor, 'name', '?')}: expected a 2-d weight, got shape {ne}")
        shape = (ne[1], ne[0])
        label = f"tensor {getattr(tensor, 'name', '?')}"
    else:
        if qtype is None or shape is None:
            raise TypeError("from_gguf: pass a gguf.ReaderTensor, or raw bytes with qtype= and shape=(M, K)")
        data, label = tensor, "tensor"
    name = _type_name(qtype)
    if name not in FORMATS:
        hint = f"; convert it with: {CONVERT_HINT}" if name.startswith("IQ") or name.endswith("_K") else \
            "; dequantize it and use LUTWeight.from_float instead"
        raise ValueError(f"{label}: GGUF type {name} is not supported (supported: {', '.join(FORMATS)}){hint}")
    blk, nbytes, bits = FORMATS[name]
    m, k = _shape(shape, label)
    if m < 0 or k <= 0 or k % blk:
        raise ValueError(f"{label}: shape {(m, k)} is not a whole number of {name} blocks of {blk} per row")
    data = _raw_bytes(data)
    want = m * (k // blk) * nbytes  # Python ints: no wrap-around for any shape
    if data.size != want:
        where = (f"block {data.size // nbytes} (row {data.size // nbytes // (k // blk)}) is cut short"
                 if data.size < want else f"{data.size - want} bytes past the last block")
        raise ValueError(f"{label}: {name} data holds {data.size} bytes, expected {want} for shape {(m, k)}: "
                         f"{where} (truncated or corrupted)")
    blocks = data.reshape(m, k // blk, nbytes)
    if name in KQUANTS or (fp16 and name in SPECS):
        return decode_blocks(blocks, name, label)
    codes, scales, offsets = _DECODERS[name](blocks)
    bad = ~(np.isfinite(scales) & np.isfinite(offsets))
    if bad.any():
        r, b = np.argwhere(bad)[0]
        raise ValueError(f"{label}: block {b} of row {r} has a non-finite scale (corrupted data)")
    return codes.reshape(m, k), scales, offsets, bits, blk, ("ternary" if name.startswith("TQ") else "int"), name


def _q4_nibbles(qs: np.ndarray) -> np.ndarray:
    # byte j: low nibble = element j, high nibble = element j + 16
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _q4_0(blocks):
    d = _f16(blocks, 0)
    return _q4_nibbles(blocks[..., 2:18]), d, d * np.float32(-8)


def _q4_1(blocks):
    return _q4_nibbles(blocks[..., 4:20]), _f16(blocks, 0), _f16(blocks, 2)


def _q5_high(blocks: np.ndarray, start: int) -> np.ndarray:
    # 4 bytes, little-endian uint32: bit j is bit 4 of element j
    qh = blocks[..., start:start + 4]
    return ((qh[..., :, None] >> np.arange(8, dtype=np.uint8)) & 1).reshape(*qh.shape[:-1], 32)


def _q5_0(blocks):
    d = _f16(blocks, 0)
    return _q4_nibbles(blocks[..., 6:22]) | (_q5_high(blocks, 2) << 4), d, d * np.float32(-16)


def _q5_1(blocks):
    return _q4_nibbles(blocks[..., 8:24]) | (_q5_high(blocks, 4) << 4), _f16(blocks, 0), _f16(blocks, 2)


def _q8_0(blocks):
    d = _f16(blocks, 0)
    q = blocks[..., 2:34].view(np.int8).astype(np.int16) + 128
    return q.astype(np.uint8), d, d * np.float32(-128)


def _tq2_0(blocks):
    qs, d = blocks[..., :64], _f16(blocks, 64)
    # 64 bytes in two halves of 32; 2-bit field l of byte j of half h is element 128 h + 32 l + j
    halves = qs.reshape(*qs.shape[:-1], 2, 1, 32)
    fields = (halves >> (2 * np.arange(4, dtype=np.uint8))[:, None]) & 3  # [..., 2, 4, 32]
    codes = fields.reshape(*qs.shape[:-1], 256)
    if (codes == 3).any():
        r, b = np.argwhere((codes == 3).any(axis=-1))[0]
        raise ValueError(f"tensor: TQ2_0 block {b} of row {r} holds code 3, which is not ternary (corrupted data)")
    return codes, d, -d


def _trits(packed: np.ndarray, count: int) -> np.ndarray:
    """Base-3 digits stored as fixed-point fractions: digit n of byte b is ((b * 3^n mod 256) * 3) >> 8."""
    pow3 = np.array([1, 3, 9, 27, 81, 243], np.uint16)[:count]
    q = (packed[..., None, :].astype(np.uint16) * pow3[:, None]) & 0xFF  # [..., n, bytes]
    return ((q * 3) >> 8).astype(np.uint8)


def _tq1_0(blocks):
    qs, qh, d = blocks[..., :48], blocks[..., 48:52], _f16(blocks, 52)
    lead = qs.shape[:-1]
    # element order: 5 digits of bytes 0..31 (digit-major), 5 digits of bytes 32..47, 4 digits of qh
    codes = np.concatenate([_trits(qs[..., :32], 5).reshape(*lead, 160), _trits(qs[..., 32:], 5).reshape(*lead, 80),
                            _trits(qh, 4).reshape(*lead, 16)], axis=-1)
    return codes, d, -d


_DECODERS = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0, "TQ1_0": _tq1_0, "TQ2_0": _tq2_0}
