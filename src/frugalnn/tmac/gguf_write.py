"""Write a quantized Llama GGUF: every metadata key and the tokenizer copied from the input file, the linear
tensors replaced by standard GGUF blocks (Q4_0, Q4_1, Q2_K, Q3_K, Q4_K, ... as the grid family encodes them),
every other tensor (embedding, output head, norms) kept exactly as stored. llama.cpp and frugalnn.llm both
read the result.

The project's own LUT layouts (g{G}b{B}a: float32 scale and offset per group) have no GGUF type; writing them is
refused (the file would be readable by nothing else). The output is written to a temporary file beside the
target and renamed into place when complete, so a failure leaves no half-written file, and the input file is
never the output.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

# llama_ftype written as general.file_type: the "mostly" type of the linear tensors.
FILE_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K": 12, "Q4_K": 15,
              "Q5_K": 17, "Q6_K": 18}


def check_paths(src: Path, out: Path, force: bool = False) -> None:
    """Refuse an output that is the input (never overwrite the user's model), an existing file without force,
    and a directory we cannot write to -- before any quantization work is done."""
    src, out = Path(src), Path(out)
    if out.exists() and (out.resolve() == src.resolve() or os.path.samefile(out, src)):
        raise ValueError(f"-o {out}: is the input file; choose another output path (the input is never overwritten)")
    if out.suffix.lower() != ".gguf":
        raise ValueError(f"-o {out}: expected a .gguf path")
    if out.is_dir():
        raise ValueError(f"-o {out}: is a directory")
    if out.exists() and not force:
        raise ValueError(f"-o {out}: exists; pass --force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"-o {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"-o {out}: directory {parent} is not writable")


def encoded(tensors: dict) -> dict:
    """GGUF tensor name -> (type name, uint8 block bytes [M, row bytes]) from Quantization.tensors."""
    out = {}
    for name, (fam, grid, codes) in tensors.items():
        if not fam.gguf:
            raise ValueError(f"{name}: {fam.qtype} is the project's own LUT layout and has no GGUF type; "
                             f"`frugalnn quantize` writes Q4_0, Q4_1, Q2_K, Q3_K, Q4_K (--type)")
        out[name] = (fam.qtype, np.ascontiguousarray(fam.encode(grid, codes), np.uint8))
    return out


def write(src: Path, out: Path, blocks: dict, mostly: str, force: bool = False) -> Path:
    """Copy GGUF `src` to `out` with the tensors in `blocks` (name -> (type name, bytes)) replaced."""
    import gguf

    src, out = Path(src), Path(out)
    check_paths(src, out, force)
    reader = gguf.GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    try:
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".part", dir=out.parent)
    except OSError as e:
        raise PermissionError(f"-o {out}: cannot create a file in {out.parent} ({e.strerror})") from None
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        align = reader.fields.get("general.alignment")
        if align is not None:
            writer.data_alignment = int(align.contents())
        for f in reader.fields.values():
            if f.name == "general.architecture" or f.name.startswith("GGUF."):
                continue
            if f.name in ("general.file_type", "general.quantization_version"):
                continue
            vtype = f.types[0]
            sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
        writer.add_uint32("general.file_type", FILE_TYPES.get(mostly, 0))
        writer.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
        data = []
        for t in reader.tensors:
            if t.name in blocks:
                qname, raw = blocks[t.name]
                qt = gguf.GGMLQuantizationType[qname]
                want = gguf.quant_shape_to_byte_shape((int(t.shape[1]), int(t.shape[0])), qt)
                if tuple(raw.shape) != tuple(want):
                    raise ValueError(f"{t.name}: encoded {qname} bytes have shape {raw.shape}, expected {want}")
                writer.add_tensor_info(t.name, raw.shape, raw.dtype, raw.nbytes, raw_dtype=qt)
                data.append(raw)
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, raw_dtype=t.tensor_type)
                data.append(t.data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for d in data:
            writer.write_tensor_data(d)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out
