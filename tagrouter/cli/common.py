"""What the commands share: the error line, loading a suite, the tagger for offline embedding."""
from __future__ import annotations

import sys


def fail(message: str, code: int = 2) -> int:
    """Print `tagrouter: error: message` on stderr and return the exit code."""
    print(f"tagrouter: error: {message}", file=sys.stderr)
    return code


def load_suite_or_fail(path):
    """(suite, None), or (None, exit code) after printing what is wrong with a malformed suite."""
    from tagrouter.offline.suite import SuiteError, load_suite

    try:
        return load_suite(path), None
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
