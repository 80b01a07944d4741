def register(sub) -> None:
    p = sub.add_parser("report", help="run the experiments and write results.json + index.html")
    p.add_argument("--quick", action="store_true", help="smaller workloads (minutes, not hours)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="experiment or technique names to run")
    p.add_argument("--out", default="report", help="output directory (default: ./report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="threads for kernels (default: all cores)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from frugalnn.report.discover import load_experiments
    from frugalnn.techniques import TECHNIQUES

    if args.list:
        experiments, errors = load_experiments()
        for e in experiments.values():
            print(f"{e.name:<20} {e.technique:<28} {e.title}")
        for m in errors:
            print(f"{'import:' + m:<20} (fails to import: run `frugalnn report --only {m}` to see why)")
        for t in TECHNIQUES:
            if t.status == "planned":
                print(f"{'-':<20} {t.name:<28} {t.title} (planned: no experiment yet)")
        return 0
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    from frugalnn.report.runner import run_report

    outcomes = run_report(only=args.only, quick=args.quick, out=Path(args.out), seed=args.seed, threads=args.threads)
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'index.html'}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0
