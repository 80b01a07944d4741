def register(sub) -> None:
    p = sub.add_parser("info", help="version, CPU features, kernel backend, threads, library versions")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from frugalnn import info

    data = info.collect()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        info.render(data)
    return 0
