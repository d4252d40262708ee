"""The online path learns what the offline path learns: a suite's outcomes as Feedback calls.

Each (query, model) of a split is one judged answer: its wins, ties and losses against every
other model of the pool (`scoring.pairwise_outcomes`, as `fit.fit_counts` counts them), its
output tokens, and the query's tags. One Feedback with `outcomes` adds the three counts and one
answer to every (tag, model) cell of the query and to `*`, so replaying the whole split into a
store that holds only the pool ends with exactly `fit_counts` for the same tags.

A Feedback id is a hash of the store's weights version, the suite, the split, the query and the
model: a rerun into the same loaded weights counts nothing twice, and a fresh load of the pool
(a new version) counts everything again.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tagrouter.core.scoring import ALL_QUERIES_TAG, ScoringParams, pairwise_outcomes
from tagrouter.core.weights import ModelPrice, Weights
from tagrouter.offline.suite import Suite


@dataclass(frozen=True)
class Answer:
    """One judged answer, as one Feedback call."""

    feedback_id: str
    tags: tuple[str, ...]
    model: str
    outcomes: tuple[int, int, int]  # wins, ties, losses against the other models of the pool
    output_tokens: float


def feedback_id(scope: str, query_id: str, model: str) -> str:
    """A deterministic Feedback id (printable, well under the 128-character limit)."""
    digest = hashlib.sha256("\0".join((scope, query_id, model)).encode()).hexdigest()
    return f"replay-{digest[:48]}"


def answers(suite: Suite, query_tags: list[list[str]], split: str, scope: str) -> list[Answer]:
    """Every answer of `split`, in suite order; query_tags holds the tags of every query of the suite."""
    rows = suite.rows(split)
    outcomes = pairwise_outcomes(suite.scores[rows], suite.tie_margin)
    out = []
    for i, r in enumerate(rows):
        tags = tuple(dict.fromkeys(t for t in query_tags[r] if t != ALL_QUERIES_TAG))
        qid = suite.query_ids[r]
        for m, model in enumerate(suite.model_names):
            w, t, losses = (int(round(x)) for x in outcomes[i, m])
            out.append(Answer(feedback_id(scope, qid, model), tags, model, (w, t, losses),
                              float(suite.output_tokens[r, m])))
    return out


def pool_weights(suite: Suite, params: ScoringParams | None = None, provenance: str = "") -> Weights:
    """The suite's pool with no counts (the all-queries tag, all zeros): what a replay starts from."""
    models = [ModelPrice(m.name, m.input_usd_per_mtok, m.output_usd_per_mtok) for m in suite.models]
    counts = {ALL_QUERIES_TAG: {m.name: [0.0] * 5 for m in models}}
    return Weights(models=models, params=params or ScoringParams(), counts=counts,
                   provenance=provenance or f"the pool of suite {suite.name}, no counts (tagrouter replay)")


def counts_equal(a: dict, b: dict, places: int = 6) -> list[str]:
    """Where two count tables (tag -> model -> fields) differ beyond `places` decimals; a missing
    cell counts as zeros. Empty when they are equal."""
    problems = []
    for tag in sorted(set(a) | set(b)):
        per_a, per_b = a.get(tag, {}), b.get(tag, {})
        for model in sorted(set(per_a) | set(per_b)):
            row_a, row_b = per_a.get(model, [0.0] * 5), per_b.get(model, [0.0] * 5)
            if any(abs(float(x) - float(y)) > 10.0 ** -places for x, y in zip(row_a, row_b)):
                problems.append(f"{tag} / {model}: {list(row_a)} != {list(row_b)}")
    return problems
