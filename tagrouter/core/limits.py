"""Request limits and the checks every entry point shares (the tagger, the scorer, the router).

A check raises `InvalidRequest` naming the field and the limit; the services map it to
INVALID_ARGUMENT in one interceptor. docs/OPERATIONS.md lists these limits in one table.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

MAX_QUERY_CHARS = 100_000  # past the encoder's window anyway; refuse rather than tokenise megabytes
# Characters one call may hand the encoder, client tags included: tokenising costs about 0.5-1 ms per
# 1,000 characters on the tagger's encoder thread, so these bound how long one call can hold it.
MAX_REQUEST_CHARS = 100_000  # one Tag or Route: the query plus its client tags
MAX_BATCH_CHARS = 200_000  # one TagBatch: every query plus every client tag
MAX_BATCH_REQUESTS = 256  # queries in one TagBatch
MAX_CLIENT_TAGS = 16
MAX_CLIENT_TAG_CHARS = 200
MAX_CANDIDATES = 64  # candidate models in one Route or Score
MAX_TAGS = 64  # a query carries a handful; more is a malformed request
MAX_FEEDBACK_ID = 128
MAX_SESSION_ID = 256  # a sticky session's key (Route.session_id)
MAX_PROMPT_CHARS = 8 * 1024 * 1024  # Route.prompt_chars: as many characters as the front door's largest body has bytes


class InvalidRequest(ValueError):
    """A request's content is invalid; the message names the field and what was wrong."""


def shown(value: str, limit: int = 80) -> str:
    """A caller's string as an error message quotes it: repr, cut to `limit` characters."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


# Unicode categories that show nothing on their own: separators (spaces), controls, format characters
# (zero-width spaces and joiners, the byte-order mark, bidi marks), surrogates, unassigned code points,
# and combining marks with nothing to combine with.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Cn", "Mn", "Me"})


def has_visible(text: str) -> bool:
    """Whether `text` has at least one character that shows (stops at the first one)."""
    category = unicodedata.category
    return any(category(c) not in _INVISIBLE for c in text)


def check_query(query: str, where: str = "query") -> None:
    if not query.strip():
        raise InvalidRequest(f"{where} is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"{where} has {len(query)} characters, at most {MAX_QUERY_CHARS}")
    if not has_visible(query):
        raise InvalidRequest(f"{where} has no visible character (only spaces, zero-width or control characters)")


def request_chars(query: str, client_tags: Sequence[str]) -> int:
    return len(query) + sum(len(t) for t in client_tags)


def check_request_chars(query: str, client_tags: Sequence[str]) -> None:
    """One Tag or Route: the query and its client tags together, at most MAX_REQUEST_CHARS characters."""
    total = request_chars(query, client_tags)
    if total > MAX_REQUEST_CHARS:
        raise InvalidRequest(f"query and client_tags have {total} characters together, at most {MAX_REQUEST_CHARS}")


def check_batch(requests: Sequence) -> None:
    """One TagBatch (items with .query and .client_tags): at most MAX_BATCH_REQUESTS queries and
    MAX_BATCH_CHARS characters in all, each query and its client tags valid on their own."""
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(f"requests: {len(requests)} queries, at most {MAX_BATCH_REQUESTS}")
    total = 0
    for i, r in enumerate(requests):
        check_query(r.query, f"requests[{i}].query")
        check_client_tags(r.client_tags, f"requests[{i}].client_tags")
        total += request_chars(r.query, r.client_tags)
        if total > MAX_BATCH_CHARS:
            raise InvalidRequest(f"requests: more than {MAX_BATCH_CHARS} characters in all (queries and client "
                                 f"tags) by requests[{i}]; split the batch")


def check_client_tags(client_tags: Sequence[str], where: str = "client_tags") -> None:
    """At most MAX_CLIENT_TAGS tags, each non-empty and at most MAX_CLIENT_TAG_CHARS characters."""
    if len(client_tags) > MAX_CLIENT_TAGS:
        raise InvalidRequest(f"{where}: {len(client_tags)} tags, at most {MAX_CLIENT_TAGS}")
    for i, tag in enumerate(client_tags):
        if not tag.strip():
            raise InvalidRequest(f"{where}[{i}] is empty")
        if not has_visible(tag):
            raise InvalidRequest(f"{where}[{i}] has no visible character")
        if len(tag) > MAX_CLIENT_TAG_CHARS:
            raise InvalidRequest(f"{where}[{i}] has {len(tag)} characters, at most {MAX_CLIENT_TAG_CHARS}")


def check_knob(name: str, value: float) -> float:
    """A cost weight or quality margin: a finite number >= 0."""
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{name} must be a finite number >= 0, not {value}")
    return value


def check_session_id(session_id: str) -> None:
    """A sticky session's id: empty (no session) or at most MAX_SESSION_ID characters."""
    if len(session_id) > MAX_SESSION_ID:
        raise InvalidRequest(f"session_id has {len(session_id)} characters, at most {MAX_SESSION_ID}")


def check_prompt_chars(prompt_chars: int | None, query: str) -> None:
    """Route.prompt_chars, when set: the whole prompt's characters, so at least the query's, at most MAX_PROMPT_CHARS."""
    if prompt_chars is not None and not len(query) <= prompt_chars <= MAX_PROMPT_CHARS:
        raise InvalidRequest(f"prompt_chars is {prompt_chars}: it counts the whole prompt, the query's {len(query)} "
                             f"characters included, at most {MAX_PROMPT_CHARS}")


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
            raise InvalidRequest(f"{where}: unknown model {shown(model)}; the pool is {', '.join(pool)}{hint}")


def check_weighted_tags(pairs: Iterable[tuple[str, float]]) -> None:
    """Tags sent with a weight (Score): named, with a finite weight >= 0."""
    for name, weight in pairs:
        if not name:
            raise InvalidRequest("tags: a tag has an empty name")
        if not math.isfinite(weight) or weight < 0:
            raise InvalidRequest(f"tags: tag {shown(name)} has weight {weight}; need a finite weight >= 0")


def check_tag_count(count: int) -> None:
    if count > MAX_TAGS:
        raise InvalidRequest(f"tags: {count} tags, at most {MAX_TAGS}")


# --- numbers that enter state (LoadWeights, Feedback) -------------------------------------
# Every count, price and parameter is finite and inside these bounds before it is written,
# and is checked again when read back (services/scorer/store.py), so the count-to-score maths
# (tagrouter/core/scoring.py) only ever sees finite numbers whose sums cannot overflow.
MAX_OUTPUT_TOKENS = 1_000_000  # one answer's output_tokens in a Feedback
MAX_COUNT = 1e12  # a cell's win, tie, loss or answers (a trillion judgements)
MAX_TOTAL_OUTPUT_TOKENS = MAX_COUNT * MAX_OUTPUT_TOKENS  # a cell's output_tokens (1e18)
MAX_PRICE_USD_PER_MTOK = 1e6  # a model's input or output price, USD per million tokens
MAX_PARAM = 1e6  # |each scoring parameter| (rewards, prior strength, evidence, cost scale, level weights)
MIN_COST_SCALE_USD = 1e-9  # a positive cost scale: a nano-USD, the accounting's unit, keeps cost / scale finite
MAX_MODELS = 256  # models in one pool (LoadWeights)
MAX_CALIBRATION_POINTS = 1024  # points of the weights' knob calibration table (`tagrouter fit` stores ~100-300)

# --- vocabulary growth and reads of the weights -----------------------------------------
MAX_TAGS_TOTAL = 50_000  # distinct tags in the active weights; Feedback cannot add past it
MAX_NEW_TAGS_PER_FEEDBACK = 16  # tags one Feedback may add to the weights
# Estimated size of the weights as one message (GetWeights, WatchWeights): under the 16 MiB a
# gRPC message may carry, so a copy always fits whatever Feedback adds.
MAX_WEIGHTS_BYTES = 15 * 1024 * 1024  # an upper bound of the counts: a whole-weights message stays under gRPC's 16 MiB
CELL_BYTES = 64  # upper bound of one TagCount's encoding besides its tag and model names
MAX_GET_WEIGHTS_TAGS = 1_000  # tag names in one GetWeights


def check_output_tokens(value: float) -> float:
    """One answer's length in a Feedback: a finite number in [0, MAX_OUTPUT_TOKENS]."""
    if not math.isfinite(value) or not 0 <= value <= MAX_OUTPUT_TOKENS:
        raise InvalidRequest(f"output_tokens must be a finite number in [0, {MAX_OUTPUT_TOKENS}], not {value}")
    return value


def count_row_problem(row: Sequence[float]) -> str | None:
    """Why a counts row [win, tie, loss, answers, output_tokens] cannot enter state, or None."""
    if len(row) != 5:
        return "need 5 counts (win, tie, loss, answers, output_tokens)"
    for value in row:
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return "need 5 finite counts >= 0 (win, tie, loss, answers, output_tokens)"
    if max(row[:4]) > MAX_COUNT:
        return f"win, tie, loss and answers must be at most {MAX_COUNT:g}"
    if row[4] > MAX_TOTAL_OUTPUT_TOKENS:
        return f"output_tokens must be at most {MAX_TOTAL_OUTPUT_TOKENS:g}"
    return None


def check_get_weights_tags(names: Sequence[str]) -> list[str]:
    """The tag names of one GetWeights, de-duplicated in order; at most MAX_GET_WEIGHTS_TAGS."""
    distinct = list(dict.fromkeys(names))
    if len(distinct) > MAX_GET_WEIGHTS_TAGS:
        raise InvalidRequest(f"tags: {len(distinct)} tag names, at most {MAX_GET_WEIGHTS_TAGS} per GetWeights")
    return distinct
