"""The decision rule and the cost estimate as pure functions over arrays: no I/O.

Rule: choose argmax_m  S(m, q) - lambda * cost(m, q) / max_m' cost(m', q)    (relative), or
             argmax_m  S(m, q) - lambda * cost(m, q) / cost_scale_usd        (absolute).

The absolute form is the Lagrangian of "best total score under a total budget": a long,
expensive query pays more for the strong model than a short one, so it needs a larger score
gain to get it. The weights carry `cost_scale_usd` (0 = relative), chosen on valid with the
other scoring parameters (docs/ROUTING-CHOICES.md); the scale is a typical query's cost on the
priciest model, so lambda keeps the same order of magnitude under both forms.

lambda (the cost knob, `cost_weight`) is in units of score: 0 picks the best expected
quality; lambda = 0.1 gives up 0.1 of score to pay nothing instead of the most expensive
model's price. Dividing by the query's most expensive candidate keeps lambda meaningful for
a 10-token and a 10,000-token query alike. For two models it is the paper's rule: route to
the weak model when S(weak) - S(strong) > -lambda * (1 - cost_weak/cost_strong).
Ties go to the cheaper model.

The quality margin theta >= 0 (`quality_margin`) is the paper's other side of the knob: it
defaults to the strong model. The anchor (`anchor`) is the candidate with the highest overall
rate (the best single model on the counts; ties to the priciest), and its utility gets +theta:
another model is chosen only when its utility beats the anchor's by more than theta. For two
models at lambda = 0 it is the paper's rule "send to the weak model when S(weak) - S(strong) >
theta" with theta > 0. Large theta sends everything to the anchor; theta = 0 is the rule above.
The curve is one path: theta from large down to 0 at lambda = 0 (between "always the best
model" and the plain argmax), then lambda from 0 up (toward the cheapest model).
"""
from __future__ import annotations

import math

import numpy as np

USD_PER_MTOK = 1e-6
# Utilities within this of the best are tied, and the cheaper of them is chosen (`best_of`).
TIED_UTILITY = 1e-12


def estimate_costs(input_tokens: int, expected_output_tokens: np.ndarray, input_usd_per_mtok: np.ndarray,
                   output_usd_per_mtok: np.ndarray) -> np.ndarray:
    """[M] USD: input_tokens * input price + expected output tokens * output price."""
    return (input_tokens * input_usd_per_mtok + expected_output_tokens * output_usd_per_mtok) * USD_PER_MTOK


# The tagger's count of a text includes its tokenizer's [CLS] and [SEP] (tagrouter.core.encoder).
TAGGER_FIXED_TOKENS = 2


def prompt_tokens(query_tokens: int, query_chars: int, prompt_chars: int | None, fixed_tokens: int = 0) -> int:
    """The input tokens to price: the query's own count, plus, when the prompt as sent is longer (a system
    prompt, earlier turns), its other characters at the query's rate of tokens per character, the count's
    `fixed_tokens` left out of the rate (a short query's [CLS] and [SEP] would otherwise dominate it)."""
    if prompt_chars is None or prompt_chars <= query_chars or query_chars <= 0:
        return query_tokens
    return query_tokens + math.ceil((prompt_chars - query_chars) * max(query_tokens - fixed_tokens, 0) / query_chars)


def anchor(overall: np.ndarray, prices: np.ndarray) -> int:
    """The anchor of the quality margin: the model with the highest overall rate `overall` [M]
    (for TagRouter the `*` tag's rate, for a baseline its mean predicted score on train), ties
    (within 1e-12) to the highest `prices` [M] (e.g. input + output list price), then the first."""
    overall = np.asarray(overall, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    if overall.size == 0:
        raise ValueError("no candidate models")
    top = overall >= overall.max() - 1e-12
    return int(np.flatnonzero(top)[np.argmax(prices[top])])


def utilities(scores: np.ndarray, costs: np.ndarray, cost_weight: float, cost_scale_usd: float = 0.0,
              quality_margin: float = 0.0, anchor: int | None = None) -> np.ndarray:
    """[..., M] utility along the last axis (works for one query or many).

    cost_scale_usd = 0: S - lambda * cost / max cost (the query's priciest candidate);
    cost_scale_usd > 0: S - lambda * cost / cost_scale_usd, one scale for every query;
    plus quality_margin on the anchor model's utility (when an anchor is given).
    """
    if cost_scale_usd > 0:
        utility = scores - cost_weight * (costs / cost_scale_usd)
    else:
        top = costs.max(axis=-1, keepdims=True)
        relative = np.divide(costs, top, out=np.zeros_like(costs, dtype=np.float64), where=top > 0)
        utility = scores - cost_weight * relative
    if anchor is None or np.all(np.asarray(quality_margin) == 0):
        return utility
    bonus = np.zeros(scores.shape[-1])
    bonus[anchor] = 1.0
    return utility + np.asarray(quality_margin, dtype=np.float64) * bonus


def choose(scores: np.ndarray, costs: np.ndarray, cost_weight: float, cost_scale_usd: float = 0.0,
           quality_margin: float = 0.0, anchor: int | None = None) -> int | np.ndarray:
    """Index of the chosen model (or [Q] indices for [Q, M] inputs); ties go to the cheaper.

    cost_weight and quality_margin may be arrays that broadcast against the scores (e.g.
    [K, 1, 1] for K knob settings at once: [K, Q] choices), which is how the evaluation sweeps
    the knobs. quality_margin >= 0 is added to the utility of model `anchor` (see `anchor`).
    """
    return best_of(utilities(scores, costs, cost_weight, cost_scale_usd, quality_margin, anchor), costs)


def best_of(utility: np.ndarray, costs: np.ndarray) -> int | np.ndarray:
    """`choose` from utilities already computed: the highest, ties to the cheaper."""
    best = utility.max(axis=-1, keepdims=True)
    # |u - best| <= TIED_UTILITY is np.isclose(rtol=0, atol=1e-12) without its overhead, a third
    # of Route's own time for 7 models; `==` keeps infinite utilities tied as isclose does.
    tied = (utility == best) | (np.abs(utility - best) <= TIED_UTILITY)
    return np.where(tied, costs, np.inf).argmin(axis=-1)


def sticky(utility: np.ndarray, chosen: int, kept: int | None, margin: float) -> tuple[int, bool]:
    """A session's turn: (the model index to answer, whether it is the session's kept model).

    The kept model (the one that answered the session last; None when unknown or not a candidate)
    stays unless the new choice's utility beats its utility by more than `margin`."""
    if kept is None:
        return chosen, False
    if chosen != kept and utility[chosen] - utility[kept] > margin:
        return chosen, False
    return kept, True
