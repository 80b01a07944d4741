"""`frugalnn perplexity`: perplexity of a Llama GGUF on the fixed reference text (see
frugalnn.llm.perplexity for the exact slice of CPython's pydoc_data/topics.py)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from frugalnn.commands.generate import add_model_arguments

    p = sub.add_parser("perplexity", help="perplexity of a Llama GGUF on the prose of CPython's pydoc_data/topics.py")
    add_model_arguments(p)
    p.add_argument("--quick", action="store_true", help="1024 tokens instead of 4096")
    p.add_argument("--window", type=int, default=512, help="tokens per independently scored window (default 512)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from frugalnn.commands.generate import setup
    from frugalnn import llm as llama

    if args.window < 2:
        raise ValueError(f"--window: expected >= 2, got {args.window}")
    model, tok = setup(args)
    if args.window > model.max_positions:
        raise ValueError(f"--window: {args.window} exceeds the model's context of {model.max_positions}")
    ids = llama.reference_tokens(tok, args.quick)
    r = llama.perplexity(lambda x: model(x), ids, args.window,
                         progress=lambda i, n: print(f"\rwindow {i}/{n}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    if args.json:
        print(json.dumps({"model": str(model.source), "bits": model.bits, **r.to_dict()}, indent=2))
    else:
        print(f"perplexity {r.perplexity:.4f} (mean NLL {r.mean_nll:.4f}) on {r.scored_tokens} tokens of "
              f"pydoc_data/topics.py execmodel+types, windows of {r.window}; {model.source.name} at {model.bits} "
              f"bits; Python {r.python}, text sha256 {r.text_sha256}")
    return 0
