"""Tag selection as pure functions: similarities in, tags out. Shared by the tagger service,
fitting and evaluation, so offline numbers are what the service does."""
from __future__ import annotations

import re

import numpy as np

TAGS_PER_LEVEL = 2  # tags kept per level
TAG_MIN_SCORE = 0.15  # cosine similarity below which a tag is dropped
# A fine topic is a many-way choice: below this similarity the nearest topic is more often wrong than
# right on held-out Arena-Hard queries (docs/TAGS.md, "Topic threshold"), so the query gets none.
TOPIC_MIN_SCORE = 0.4

LEVELS = ("task", "domain", "topic", "attr")

# Cheap surface attributes: fixed names, assigned by rules, score 1.
ATTRIBUTE_TAGS = (
    "attr:short-input",
    "attr:long-input",
    "attr:contains-code",
    "attr:contains-math",
    "attr:multiple-choice",
    "attr:multi-part",
    "attr:non-latin-script",
    "attr:script-cjk",
    "attr:script-cyrillic",
    "attr:script-arabic-hebrew",
    "attr:script-indic",
    "attr:script-other",
)
SHORT_INPUT_TOKENS = 10
LONG_INPUT_TOKENS = 256

_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[:(]|#include|\bfunction\s*\w*\(|=>|;\s*$|\breturn\b.*;|</?\w+>",
                   re.MULTILINE)
_MATH = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\\frac|\\sum|\\int|\$[^$]+\$|\b(sqrt|log|sin|cos|integral|derivative)\b",
                   re.IGNORECASE)
_CHOICES = re.compile(r"(^|\n|\s)\(?[A-D]\)\s|\bOption\s*[12]\b|\b[A-D]\.\s+\w", re.IGNORECASE)
_PARTS = re.compile(r"(^|\n)\s*(\d+[.)]|[-*•])\s+\S")
_NON_LATIN = re.compile(r"[\u0400-\u04FF\u0590-\u06FF\u0900-\u097F\u0E00-\u0E7F\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]")
# The script of a non-Latin query: a cheap stand-in for its language.
_SCRIPTS = (
    ("attr:script-cjk", re.compile(r"[\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]")),
    ("attr:script-cyrillic", re.compile(r"[\u0400-\u04FF]")),
    ("attr:script-arabic-hebrew", re.compile(r"[\u0590-\u06FF]")),
    ("attr:script-indic", re.compile(r"[\u0900-\u0DFF]")),
    ("attr:script-other", re.compile(r"[\u0E00-\u0E7F\u0370-\u03FF\u0530-\u058F\u10A0-\u10FF]")),
)


def attribute_tags(text: str, token_count: int) -> list[str]:
    """Surface attributes of a query, from cheap rules over its text and token count."""
    tags = []
    if token_count <= SHORT_INPUT_TOKENS:
        tags.append("attr:short-input")
    if token_count >= LONG_INPUT_TOKENS:
        tags.append("attr:long-input")
    if _CODE.search(text):
        tags.append("attr:contains-code")
    if _MATH.search(text):
        tags.append("attr:contains-math")
    if _CHOICES.search(text):
        tags.append("attr:multiple-choice")
    if len(_PARTS.findall(text)) >= 2 or text.count("?") >= 2:
        tags.append("attr:multi-part")
    if len(_NON_LATIN.findall(text)) >= 3:
        tags.append("attr:non-latin-script")
    counts = [(len(rx.findall(text)), name) for name, rx in _SCRIPTS]
    most, script = max(counts, key=lambda c: c[0])
    if most >= 3:
        tags.append(script)
    return tags


def slug(label: str) -> str:
    """A label as a tag name's tail: lower case, '&' as 'and', runs of other characters as '-'."""
    text = label.lower().replace("&", " and ").replace("+", " plus ")
    return re.sub(r"[^0-9a-z\u00c0-\uffff]+", "-", text).strip("-")


def normalise_client_tag(text: str) -> str:
    """A client's free-text tag in the canonical name form, level prefix kept when it names one."""
    level, sep, rest = text.strip().partition(":")
    if sep and level.strip().lower() in LEVELS:
        return f"{level.strip().lower()}:{slug(rest)}"
    return slug(text)


def align(similarity: np.ndarray, min_similarity: float) -> list[tuple[int, float] | None]:
    """The nearest canonical tag of each client tag, or None below `min_similarity`.

    similarity: [C, T] cosine similarity of each client tag's embedding to each prototype.
    """
    out: list[tuple[int, float] | None] = []
    for row in similarity:
        best = int(np.argmax(row)) if row.size else -1
        out.append((best, float(row[best])) if best >= 0 and row[best] >= min_similarity else None)
    return out


def select_tags(similarity: np.ndarray, level_of_tag: np.ndarray, per_level: int,
                min_score: float | np.ndarray) -> list[tuple[int, float]]:
    """Top `per_level` tags of each level whose similarity reaches `min_score` (one value, or one per tag).

    similarity: [T] cosine similarity of one query to each tag prototype.
    level_of_tag: [T] index into LEVELS. Returns (tag index, similarity), best first per level.
    """
    chosen: list[tuple[int, float]] = []
    min_score = np.broadcast_to(np.asarray(min_score, dtype=np.float64), similarity.shape)
    for level in np.unique(level_of_tag):
        members = np.flatnonzero(level_of_tag == level)
        best = members[np.argsort(-similarity[members], kind="stable")[:per_level]]
        chosen.extend((int(i), float(similarity[i])) for i in best if similarity[i] >= min_score[i])
    return chosen


def nearest_in_groups(similarity: np.ndarray, groups: list[np.ndarray]) -> list[int]:
    """Index of the most similar tag of each group (suite-fitted topic clusters: one per granularity)."""
    return [int(rows[np.argmax(similarity[rows])]) for rows in groups]
