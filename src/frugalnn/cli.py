"""The `frugalnn` command line. Each subcommand lives in frugalnn/commands/<name>.py and defines
`register(subparsers)`; handlers import what they need lazily so `frugalnn info` stays fast.

User errors (bad arguments, missing files, bad input data) print one line and exit 2; use
--debug for the traceback. That includes argparse's own errors (no usage block) and a --seed
outside 0..2^64-1 (the widest seed torch and numpy both take), checked for every command.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


MAX_SEED = 2**64 - 1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (subcommand parsers inherit the class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import frugalnn
    import frugalnn.commands as commands

    parser = _Parser(prog="frugalnn", description="Cheaper neural networks, measured.")
    parser.add_argument("--version", action="version", version=f"frugalnn {frugalnn.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    seed = getattr(args, "seed", None)
    if isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
        # torch's generators take at most 64 bits ("Overflow when unpacking long long" past them)
        print(f"frugalnn {args.command}: error: --seed: expected 0..{MAX_SEED}, got {seed}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, PermissionError, KeyError) as e:
        if args.debug:
            raise
        print(f"frugalnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
