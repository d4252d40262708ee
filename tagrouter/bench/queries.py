"""The bench's queries: real prompts from the shared folder (or a built-in set), made distinct.

Every measured query is a base prompt plus a short run-unique marker, so the tagger's
exact-match cache misses on all of them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tagrouter.offline.paths import SHARED_ENV, raw_dir, require_dir

# Token windows of the two query sets, before the run marker (about 6 tokens) is added.
SHORT_TOKENS = (14, 28)
LONG_TOKENS = (340, 460)

# A fallback when ../shared is absent, so the bench runs anywhere: short real-looking prompts;
# long queries are made by joining them.
BUILTIN_PROMPTS = [
    "Write a Python function that reverses a linked list and explain its time complexity.",
    "What are the main differences between Python and JavaScript programming languages?",
    "How can I improve my time management skills while working from home with kids?",
    "Explain the difference between a virus and a bacterium in simple terms for a child.",
    "Give me three ideas for a healthy vegetarian dinner that takes under thirty minutes.",
    "Solve for x: 3x + 7 = 22, and show every step of the working clearly.",
    "Summarise the causes of the First World War in one short paragraph please.",
    "Write a haiku about autumn leaves falling on a quiet mountain lake at dawn.",
    "What is the capital of Australia, and why was it chosen over Sydney and Melbourne?",
    "Translate 'Where is the nearest train station?' into French, German and Spanish.",
    "Draft a polite email asking my landlord to fix the heating in my apartment this week.",
    "Explain how public key cryptography works, with an example using small prime numbers.",
    "Which sorting algorithm is best for nearly sorted data, and why does it perform well?",
    "Write a SQL query that returns the ten customers with the highest total order value.",
    "What are some good strategies for learning a new language as an adult beginner?",
    "Describe the water cycle and the role the sun plays in driving each of its stages.",
]


def prompts_dir(shared: Path | None) -> Path | None:
    """The folder of raw prompt sets: `--shared`, else `tagrouter.offline.paths.raw_dir()`.

    A folder that was asked for (`--shared` or TAGROUTER_SHARED_DIR) and is absent is an error;
    the implicit default (../shared under the working directory) may be absent: None, and the
    bench uses its built-in prompts.
    """
    try:
        if shared is not None:
            return require_dir(shared, "tagrouter bench --shared")
        if os.environ.get(SHARED_ENV, "").strip():
            return require_dir(raw_dir(), "tagrouter bench prompts (data/raw of the shared folder)")
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    return raw_dir().resolve() if raw_dir().is_dir() else None


def _read_jsonl(path: Path, key) -> list[str]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            value = key(json.loads(line))
            if isinstance(value, str) and value.strip():
                out.append(value)
    return out


def load_prompts(shared: Path | None) -> tuple[list[str], str]:
    """Real prompts from the shared folder (AlpacaEval, Vicuna, Arena-Hard), else the built-in set."""
    if shared is None:
        return list(BUILTIN_PROMPTS), "the built-in prompts (../shared is absent)"
    vicuna = shared / "vicuna_bench" / "vicuna_bench_question.jsonl"
    prompts = (_read_jsonl(shared / "alpaca_eval" / "prompts.jsonl", lambda d: d.get("instruction"))
               + _read_jsonl(vicuna, lambda d: (d.get("turns") or [None])[0])
               + [p for name in ("arena-hard-v0.1_question.jsonl", "arena-hard-v2.0_question.jsonl")
                  for p in _read_jsonl(shared / "arena_hard" / name, lambda d: d.get("prompt"))])
    if len(prompts) >= 100:
        return list(dict.fromkeys(prompts)), f"AlpacaEval, Vicuna and Arena-Hard prompts from {shared}"
    return list(BUILTIN_PROMPTS), "the built-in prompts (../shared is absent)"


def query_sets(prompts: list[str], count_tokens) -> dict[str, list[str]]:
    """Short (about 25 tokens) and long (about 400 tokens) base queries, from real prompts.

    Long ones are real prompts of that length, topped up by joining shorter prompts.
    """
    counts = [count_tokens(p) for p in prompts]
    short = [p for p, n in zip(prompts, counts) if SHORT_TOKENS[0] <= n <= SHORT_TOKENS[1]]
    long = [p for p, n in zip(prompts, counts) if LONG_TOKENS[0] <= n <= LONG_TOKENS[1]]
    if not short:
        short = sorted(prompts, key=lambda p: abs(count_tokens(p) - 20))[:16]
    # Top up with joined prompts (medium ones first) until there are at least 64 long queries.
    pool = [p for p, n in zip(prompts, counts) if 20 <= n < LONG_TOKENS[0]] or prompts
    start = 0
    while len(long) < 64:
        joined, n = [], 0
        while n < (LONG_TOKENS[0] + LONG_TOKENS[1]) // 2:
            piece = pool[start % len(pool)]
            start += 1
            joined.append(piece)
            n += count_tokens(piece)
        long.append("\n\n".join(joined))
    return {"short": short, "long": long}


class Queries:
    """Distinct queries on demand: base prompts in turn, each with a run-unique marker."""

    def __init__(self, base: list[str], run_id: str):
        self.base = base
        self.run_id = run_id
        self.issued = 0

    def take(self, n: int) -> list[str]:
        out = self.peek(n, start=self.issued)
        self.issued += n
        return out

    def peek(self, n: int, start: int = 0) -> list[str]:
        """Queries like the ones `take` gives, without using any up (for statistics)."""
        return [f"{self.base[i % len(self.base)]} [{self.run_id}{i}]" for i in range(start, start + n)]
