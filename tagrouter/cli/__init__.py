"""`tagrouter`: serve, route a query, import a suite, fit weights, evaluate, build the vocabulary, tag text, bench.

One module per command group; each adds its subcommands to the parser (`add_parsers`) and
imports what its commands need only when they run, so `tagrouter route` loads no encoder.
"""
from __future__ import annotations

import argparse

from tagrouter.cli import bench, evaluation, replay, route, serve, simulate, suite, tenant, vocab, weights

COMMAND_GROUPS = (serve, route, suite, weights, replay, evaluation, vocab, bench, tenant, simulate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagrouter", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `tagrouter ... | head`: the reader has what it wanted
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 0


__all__ = ["build_parser", "main"]
