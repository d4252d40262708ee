"""Tag selection as pure functions: similarities in, tags out. Shared by the tagger service,
fitting and evaluation, so offline numbers are what the service does."""
from __future__ import annotations

import re

import numpy as np

# the `attr:` rules live in tagrouter/core/attributes.py; their names are part of this module's interface
from tagrouter.core.attributes import ATTRIBUTE_TAGS, attribute_tags  # noqa: F401

TAGS_PER_LEVEL = 2  # tags kept per level
TAG_MIN_SCORE = 0.15  # cosine similarity below which a tag is dropped
# A fine topic is a many-way choice: below this similarity the nearest topic is more often wrong than
# right on held-out Arena-Hard queries (docs/TAGS.md, "Topic threshold"), so the query gets none.
TOPIC_MIN_SCORE = 0.4

LEVELS = ("task", "domain", "topic", "attr")

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
    return select_in_levels(similarity, level_members(level_of_tag), per_level, min_score)


def level_members(level_of_tag: np.ndarray) -> list[np.ndarray]:
    """The tag indices of each level present, in level order: what `select_in_levels` takes, made once."""
    return [np.flatnonzero(level_of_tag == level) for level in np.unique(level_of_tag)]


def select_in_levels(similarity: np.ndarray, members: list[np.ndarray], per_level: int,
                     min_score: float | np.ndarray) -> list[tuple[int, float]]:
    """`select_tags` with each level's members given (`level_members`): the tagger's per-query path."""
    chosen: list[tuple[int, float]] = []
    min_score = np.broadcast_to(np.asarray(min_score, dtype=np.float64), similarity.shape)
    for rows in members:
        best = rows[np.argsort(-similarity[rows], kind="stable")[:per_level]]
        chosen.extend((int(i), float(similarity[i])) for i in best if similarity[i] >= min_score[i])
    return chosen


def nearest_in_groups(similarity: np.ndarray, groups: list[np.ndarray]) -> list[int]:
    """Index of the most similar tag of each group (suite-fitted topic clusters: one per granularity)."""
    return [int(rows[np.argmax(similarity[rows])]) for rows in groups]
