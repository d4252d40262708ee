"""Labelled query corpora that feed the tag vocabulary, and their fixed build / held-out split.

Each known corpus file (under ../shared/data/raw/, see its README for provenance) is read
into `Prompt`s: the query text and the labels the corpus carries (a topic cluster, a
category, a benchmark name), each under a source name such as `arena-hard` or `vicuna`.
A file is recognised by its name; an unknown, missing, empty or non-UTF-8 file, or a
malformed record, raises CorpusError with the file (and line) in the message.

The split is a pure function of each record's stable id, so the vocabulary build and the
tag-quality measurement agree on which prompts the build never saw.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# Share of each label's prompts held out from the build (at least one when a label has two).
HELD_OUT_FRACTION = 0.3


class CorpusError(ValueError):
    """A corpus file is unusable; the message names the file."""


@dataclass(frozen=True)
class Prompt:
    corpus: str  # the corpus's reader name, e.g. "arena-hard-v0.1"
    id: str  # stable within the corpus
    text: str
    labels: dict[str, str] = field(default_factory=dict)  # source -> label, e.g. {"arena-hard": "AWS ..."}


def read_text(path: Path) -> str:
    """The file's text; CorpusError naming the file when it is missing, empty or not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, expected a corpus file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise CorpusError(f"{path}: empty")
    return text


def _jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    records = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        missing = [k for k in required if k not in record] if isinstance(record, dict) else list(required)
        if missing:
            raise CorpusError(f"{path}:{lineno}: missing key {missing[0]!r}")
        records.append(record)
    return records


def _text(path: Path, lineno: int, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(f"{path}:{lineno}: empty or non-text prompt")
    return value.strip()


def read_arena_hard_v01(path: Path) -> list[Prompt]:
    """Arena-Hard v0.1: 500 prompts, each in one of 250 topic clusters."""
    return [Prompt("arena-hard-v0.1", r["uid"], _text(path, i, r["prompt"]), {"arena-hard": r["cluster"]})
            for i, r in enumerate(_jsonl(path, ("uid", "cluster", "prompt")), 1)]


def read_arena_hard_v20(path: Path) -> list[Prompt]:
    """Arena-Hard v2.0: 750 prompts with a subcategory (coding, math, creative_writing)."""
    return [Prompt("arena-hard-v2.0", r["uid"], _text(path, i, r["prompt"]), {"arena-hard-v2": r["subcategory"]})
            for i, r in enumerate(_jsonl(path, ("uid", "subcategory", "prompt")), 1)]


def read_vicuna(path: Path) -> list[Prompt]:
    """Vicuna-bench: 80 questions in 9 categories (first turn only)."""
    out = []
    for i, r in enumerate(_jsonl(path, ("question_id", "category", "turns")), 1):
        turns = r["turns"] if isinstance(r["turns"], list) and r["turns"] else [None]
        out.append(Prompt("vicuna", str(r["question_id"]), _text(path, i, turns[0]), {"vicuna": r["category"]}))
    return out


def read_alpaca_eval(path: Path) -> list[Prompt]:
    """AlpacaEval: 805 prompts, each from one source set (helpful_base, koala, oasst, selfinstruct, vicuna)."""
    return [Prompt("alpaca-eval", str(r["idx"]), _text(path, i, r["instruction"]), {"alpaca-eval": r["dataset"]})
            for i, r in enumerate(_jsonl(path, ("idx", "dataset", "instruction")), 1)]


def read_routerbench(path: Path) -> list[Prompt]:
    """RouterBench 0-shot subset: ARC-challenge, MBPP, Winogrande prompts with their task name.

    The few-shot block that opens every prompt of a task is stripped (the longest common
    prefix of that task's prompts, cut at a blank line), as the canonical suites do.
    """
    reader = csv.DictReader(io.StringIO(read_text(path)))
    for key in ("sample_id", "eval_name", "prompt"):
        if key not in (reader.fieldnames or []):
            raise CorpusError(f"{path}: missing column {key!r}")
    raw: list[tuple[str, str, str]] = []
    for lineno, row in enumerate(reader, 2):
        prompt = row["prompt"]
        if prompt.startswith("["):
            try:
                parts = ast.literal_eval(prompt)
                prompt = parts[0] if isinstance(parts, list) and parts else prompt
            except (ValueError, SyntaxError):
                raise CorpusError(f"{path}:{lineno}: prompt is not a list literal") from None
        raw.append((row["sample_id"], row["eval_name"], _text(path, lineno, prompt)))
    by_task: dict[str, list[str]] = {}
    for _, task, text in raw:
        by_task.setdefault(task, []).append(text)
    prefix = {}
    for task, texts in by_task.items():
        common = os.path.commonprefix(texts) if len(texts) > 1 else ""
        prefix[task] = common[: common.rfind("\n\n") + 2] if "\n\n" in common else ""
    return [Prompt("routerbench", sid, text[len(prefix[task]):].strip() or text, {"routerbench": task})
            for sid, task, text in raw]


# File name -> reader. The README of ../shared/data/raw/ says where each file comes from.
READERS = {
    "arena-hard-v0.1_question.jsonl": read_arena_hard_v01,
    "arena-hard-v2.0_question.jsonl": read_arena_hard_v20,
    "vicuna_bench_question.jsonl": read_vicuna,
    "prompts.jsonl": read_alpaca_eval,
    "routerbench_0shot_arc_mbpp_winogrande.csv": read_routerbench,
}
# The corpora of a default build, relative to the raw data folder.
DEFAULT_CORPORA = (
    "arena_hard/arena-hard-v0.1_question.jsonl",
    "arena_hard/arena-hard-v2.0_question.jsonl",
    "vicuna_bench/vicuna_bench_question.jsonl",
    "alpaca_eval/prompts.jsonl",
    "routerbench_subset/routerbench_0shot_arc_mbpp_winogrande.csv",
)


def read_corpus(path: Path) -> list[Prompt]:
    """The prompts of one known corpus file; CorpusError naming the file otherwise."""
    path = Path(path)
    reader = READERS.get(path.name)
    if reader is None:
        raise CorpusError(f"{path}: unknown corpus (known files: {', '.join(sorted(READERS))})")
    prompts = reader(path)
    if not prompts:
        raise CorpusError(f"{path}: empty")
    return prompts


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _rank(prompt: Prompt) -> str:
    return hashlib.sha256(f"{prompt.corpus}/{prompt.id}".encode()).hexdigest()


def split_held_out(prompts: list[Prompt], fraction: float = HELD_OUT_FRACTION) -> tuple[list[Prompt], list[Prompt]]:
    """(build, held_out): per label, the prompts ranked first by the hash of their id are held out.

    round(fraction * n) of each label's n prompts, and at least one when it has two or more,
    so every label with two prompts (Arena-Hard's clusters) is measured on one it never saw.
    """
    by_label: dict[tuple, list[Prompt]] = {}
    for p in prompts:
        by_label.setdefault(tuple(sorted(p.labels.items())), []).append(p)
    held: set[tuple[str, str]] = set()
    for members in by_label.values():
        n = len(members)
        k = max(1 if n >= 2 else 0, round(fraction * n))
        held.update((p.corpus, p.id) for p in sorted(members, key=_rank)[:k])
    build = [p for p in prompts if (p.corpus, p.id) not in held]
    return build, [p for p in prompts if (p.corpus, p.id) in held]


def sample(prompts: list[Prompt], per_label: int) -> list[Prompt]:
    """At most `per_label` prompts of each label, chosen by id hash (deterministic), in input order."""
    by_label: dict[tuple, list[Prompt]] = {}
    for p in prompts:
        by_label.setdefault(tuple(sorted(p.labels.items())), []).append(p)
    keep = {(p.corpus, p.id) for members in by_label.values() for p in sorted(members, key=_rank)[:per_label]}
    return [p for p in prompts if (p.corpus, p.id) in keep]
