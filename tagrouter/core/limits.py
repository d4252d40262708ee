"""Request limits and the checks every entry point shares (the tagger, the scorer, the router).

A check raises `InvalidRequest` naming the field and the limit; the services map it to
INVALID_ARGUMENT in one interceptor. docs/OPERATIONS.md lists these limits in one table.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

MAX_QUERY_CHARS = 100_000  # past the encoder's window anyway; refuse rather than tokenise megabytes
MAX_BATCH_REQUESTS = 256  # queries in one TagBatch
MAX_CLIENT_TAGS = 16
MAX_CLIENT_TAG_CHARS = 200
MAX_CANDIDATES = 64  # candidate models in one Route or Score
MAX_TAGS = 64  # a query carries a handful; more is a malformed request
MAX_FEEDBACK_ID = 128


class InvalidRequest(ValueError):
    """A request's content is invalid; the message names the field and what was wrong."""


def check_query(query: str, where: str = "query") -> None:
    if not query.strip():
        raise InvalidRequest(f"{where} is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"{where} has {len(query)} characters, at most {MAX_QUERY_CHARS}")


def check_client_tags(client_tags: Sequence[str], where: str = "client_tags") -> None:
    """At most MAX_CLIENT_TAGS tags, each non-empty and at most MAX_CLIENT_TAG_CHARS characters."""
    if len(client_tags) > MAX_CLIENT_TAGS:
        raise InvalidRequest(f"{where}: {len(client_tags)} tags, at most {MAX_CLIENT_TAGS}")
    for i, tag in enumerate(client_tags):
        if not tag.strip():
            raise InvalidRequest(f"{where}[{i}] is empty")
        if len(tag) > MAX_CLIENT_TAG_CHARS:
            raise InvalidRequest(f"{where}[{i}] has {len(tag)} characters, at most {MAX_CLIENT_TAG_CHARS}")


def check_knob(name: str, value: float) -> float:
    """A cost weight or quality margin: a finite number >= 0."""
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{name} must be a finite number >= 0, not {value}")
    return value


def check_candidates(candidates: Iterable[str]) -> list[str]:
    """The candidate models, de-duplicated in order; at most MAX_CANDIDATES, none empty."""
    distinct = list(dict.fromkeys(candidates))
    if len(distinct) > MAX_CANDIDATES:
        raise InvalidRequest(f"candidate_models: {len(distinct)} models, at most {MAX_CANDIDATES}")
    if any(not c for c in distinct):
        raise InvalidRequest("candidate_models: a model name is empty")
    return distinct


def check_known_models(models: Iterable[str], pool: Sequence[str], where: str = "candidate_models",
                       hint: str = "") -> None:
    """Every one of `models` is in the pool; else the error names the first unknown one and the pool."""
    known = set(pool)
    for model in models:
        if model not in known:
            raise InvalidRequest(f"{where}: unknown model {model!r}; the pool is {', '.join(pool)}{hint}")


def check_weighted_tags(pairs: Iterable[tuple[str, float]]) -> None:
    """Tags sent with a weight (Score): named, with a finite weight >= 0."""
    for name, weight in pairs:
        if not name:
            raise InvalidRequest("tags: a tag has an empty name")
        if not math.isfinite(weight) or weight < 0:
            raise InvalidRequest(f"tags: tag {name!r} has weight {weight}; need a finite weight >= 0")


def check_tag_count(count: int) -> None:
    if count > MAX_TAGS:
        raise InvalidRequest(f"tags: {count} tags, at most {MAX_TAGS}")
