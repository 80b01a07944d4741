"""`frugalnn quantize MODEL.gguf --bits 3 --method gptq -o OUT.gguf`: re-quantize a Llama GGUF's linear layers
(round-to-nearest or GPTQ on calibration text, frugalnn.tmac.calibrated) into a standard GGUF type that llama.cpp
and frugalnn.llm both read; metadata, tokenizer, embedding, head and norms are copied as stored."""
from __future__ import annotations

import sys

TYPES_HELP = ("GGUF type of the linear tensors (default by --bits: 4 -> Q4_K, 3 -> Q3_K, 2 -> Q2_K); Q4_0 and "
              "Q4_1, Q5_0, Q5_1, Q8_0, Q5_K, Q6_K also. A tensor whose width is not whole 256-blocks takes Q4_0 "
              "(Q2_K/Q3_K) or Q5_0 (Q4_K), as llama.cpp's quantizer does")


def register(sub) -> None:
    p = sub.add_parser("quantize", help="re-quantize a Llama GGUF (RTN or GPTQ) into a standard GGUF type")
    p.add_argument("model", help="input .gguf (Llama architecture), or 'smollm2'")
    p.add_argument("-o", "--output", required=True, help="output .gguf (never the input; --force to replace)")
    p.add_argument("--bits", type=int, default=4, help="2..8 (default 4); picks the type unless --type is given")
    p.add_argument("--type", dest="qtype", default=None, help=TYPES_HELP)
    p.add_argument("--method", choices=("rtn", "gptq"), default="gptq", help="default gptq")
    p.add_argument("--act-order", action="store_true", help="GPTQ: columns by decreasing Hessian diagonal")
    p.add_argument("--calib-sequences", type=int, default=None, help="calibration sequences (default 32)")
    p.add_argument("--calib-length", type=int, default=None, help="tokens per calibration sequence (default 512)")
    p.add_argument("--force", action="store_true", help="replace an existing output file (never the input)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json
    import time

    from frugalnn import llm as llama
    from frugalnn.llm.gguf_file import GGUFModelFile
    from frugalnn.tmac import gguf_write
    from frugalnn.tmac import calibrated as Q
    from frugalnn.tmac.grids import gformat

    if not 2 <= args.bits <= 8:
        raise ValueError(f"--bits: expected 2..8, got {args.bits}")
    qtype = args.qtype.upper() if args.qtype else None
    if args.qtype and gformat(args.qtype) is not None:
        raise ValueError(f"--type {args.qtype}: the project's own LUT layouts have no GGUF type and are not written "
                         f"to files; use frugalnn.tmac.quantize(..., group_size=G) in Python")
    qtype = Q.resolve_qtype(args.bits, None, qtype)
    for n, name in ((args.calib_sequences, "--calib-sequences"), (args.calib_length, "--calib-length")):
        if n is not None and n < 1:
            raise ValueError(f"{name}: expected >= 1, got {n}")
    path = llama.resolve_model_path(args.model)
    file = GGUFModelFile(path)  # missing file, not GGUF, not Llama: one-line errors
    gguf_write.check_paths(path, args.output, args.force)  # before minutes of work
    Q.tensor_family(qtype, file.config.dim)  # type available?
    calib = None
    t0 = time.perf_counter()
    if args.method == "gptq":
        calib = Q.calibration_tokens(llama.load_tokenizer(path), args.calib_sequences or Q.CALIB_SEQUENCES,
                                     args.calib_length or Q.CALIB_LENGTH)
    else:
        import torch

        calib = torch.zeros(1, 1, dtype=torch.long)
    result = Q.quantize_blocks(file, args.method, qtype, calib, act_order=args.act_order,
                               progress=sys.stderr.isatty())
    blocks = gguf_write.encoded(result.tensors)
    out = gguf_write.write(path, args.output, blocks, qtype, force=args.force)
    types = {}
    for name, (t, _) in blocks.items():
        types[t] = types.get(t, 0) + 1
    summary = {"input": str(path), "output": str(out), "method": args.method, "type": qtype, "tensor_types": types,
               "calib_tokens": result.calib_tokens if args.method == "gptq" else 0,
               "seconds": round(time.perf_counter() - t0, 1), "bytes": out.stat().st_size,
               "peak_rss_mib": Q.peak_rss_mib()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kinds = ", ".join(f"{n} {t}" for t, n in types.items())
        calib_note = f" on {summary['calib_tokens']} calibration tokens" if args.method == "gptq" else ""
        print(f"wrote {out} ({summary['bytes'] / 1e6:.1f} MB): {kinds} tensors by {args.method}{calib_note}; "
              f"{summary['seconds']} s, peak RSS {summary['peak_rss_mib']:.0f} MiB")
    return 0
