def register(sub) -> None:
    from frugalnn.bench import load_benchmarks

    p = sub.add_parser("bench", help="run a benchmark: markdown table to stdout, JSON to a file")
    inner = p.add_subparsers(dest="benchmark", metavar="NAME")
    benchmarks, errors = load_benchmarks()
    for b in benchmarks.values():
        q = inner.add_parser(b.name, help=b.description)
        q.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
        q.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: 1 and all)")
        q.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
        q.add_argument("--json", default=None, help="where to write the JSON (default: bench-<name>.json)")
        if b.add_arguments:
            b.add_arguments(q)
        q.set_defaults(handler=run, bench=b)
    for technique, error in errors.items():
        q = inner.add_parser(technique, help=f"(fails to import: {error.strip().splitlines()[-1]})")
        q.set_defaults(handler=lambda args, e=error, t=technique: _broken(t, e))
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _broken(technique: str, error: str) -> int:
    import sys

    print(f"frugalnn bench {technique}: its bench module fails to import:\n{error}", file=sys.stderr)
    return 1


def run(args) -> int:
    from pathlib import Path

    from frugalnn import _core, info
    from frugalnn.bench.harness import BenchArgs

    hw = _core.hardware_threads()
    threads = args.threads or sorted({1, hw})
    if any(t < 1 for t in threads):
        raise ValueError(f"--threads: expected counts >= 1, got {threads}")
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    if repeats < 1:
        raise ValueError(f"--repeats: expected >= 1, got {repeats}")
    known = {"quick", "threads", "repeats", "json", "handler", "bench", "benchmark", "command", "debug"}
    options = {k: v for k, v in vars(args).items() if k not in known}
    report = args.bench.fn(BenchArgs(quick=args.quick, threads=threads, repeats=repeats, options=options))
    report.meta = {"machine": info.collect(), "threads": threads, "repeats": repeats, "quick": args.quick,
                   **report.meta}
    print(report.to_markdown())
    path = Path(args.json or f"bench-{report.name}.json")
    report.write_json(path)
    print(f"\nJSON: {path}")
    return 0
