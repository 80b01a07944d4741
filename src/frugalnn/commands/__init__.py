"""Subcommands of the `frugalnn` CLI: one module each, defining `register(subparsers)`."""
