"""What the commands share: the error line, loading a suite, the tagger for offline embedding."""
from __future__ import annotations

import sys


def bounded(kind: type, low: float, strict: bool = False):
    """An argparse type: a `kind` (int or float) at least `low` (above it with strict), finite;
    argparse names the flag in its error."""
    import argparse
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, not {text}")
        return value

    return parse


def fail(message: str, code: int = 2) -> int:
    """Print `tagrouter: error: message` on stderr and return the exit code."""
    print(f"tagrouter: error: {message}", file=sys.stderr)
    return code


def load_suite_or_fail(path, routable: bool = False):
    """(suite, None), or (None, exit code) after printing what is wrong with a malformed suite (with
    routable, also one that routers cannot be fitted on: `suite.check_routable`)."""
    from tagrouter.offline.suite import SuiteError, check_routable, load_suite

    try:
        suite = load_suite(path)
        if routable:
            check_routable(suite)
        return suite, None
    except SuiteError as err:
        return None, fail(str(err))


def eval_tagger():
    """The tagger as configured, with every core for offline embedding."""
    from tagrouter.offline.prepare import configured_tagger

    return configured_tagger()


def add_suite_arguments(parser, split: str = "train") -> None:
    """--suite DIR and --split NAME, as the commands that read one split of a suite take them."""
    from pathlib import Path

    parser.add_argument("--suite", required=True, type=Path, help="suite folder (suite.json + outcomes.jsonl)")
    parser.add_argument("--split", default=split, choices=["train", "valid", "test"])
