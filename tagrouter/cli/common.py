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


def output_path(folder: bool = False, suffixes: tuple[str, ...] = ()):
    """An argparse type: where a command writes a file (or with folder, a folder), checked before the
    work: not the other kind, the parent created when missing and writable, one of `suffixes` when
    given; argparse names the flag. (Found after the work, these were tracebacks.)"""
    import argparse
    import tempfile
    from pathlib import Path

    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and path.is_dir() != folder:
            want, found = ("folder", "file") if folder else ("file", "folder")
            raise argparse.ArgumentTypeError(f"{text} is a {found}, not a {want}")
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: the file name must end in {' or '.join(suffixes)}")
        parent = path.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as err:
            raise argparse.ArgumentTypeError(f"cannot write in {parent}: {err.strerror or err}") from None
        return path

    return parse


def text_argument(text: str) -> str:
    """An argparse type: text given on the command line, which must be UTF-8 (bytes that are not
    reach Python as lone surrogates, which neither the tokenizer nor protobuf takes)."""
    import argparse

    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise argparse.ArgumentTypeError(f"not UTF-8 text (a byte that is not at character {err.start})") from None
    return text


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
