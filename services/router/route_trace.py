"""What a Route's trace says about why it answered as it did (only called while tracing is on).

The Route span (the server span) gets the answer: chosen model, runner-up, degraded and why, tokens,
cost. `route.decide` covers the decision after scoring, with the utilities compared; a Route decided
by a fallback gets a `route.degraded` span naming the reason and the fallback.
"""
from __future__ import annotations

import logging
import time

from services.common import tracing

log = logging.getLogger(__name__)

FROM_COPY = {"tagrouter.score_source": "copy"}
FROM_SCORE_CALL = {"tagrouter.score_source": "score_call"}


def record(request, response, tags: int, scored: bool, decide_started: float) -> None:
    """Annotates the current (Route) span; `decide_started` is the perf_counter when scoring ended."""
    now_ns = tracing.now_ns()
    decide_ns = now_ns - int((time.perf_counter() - decide_started) * 1e9)
    explanation = response.explanation
    tracing.record_span("route.decide", decide_ns, now_ns, {
        "tagrouter.model": response.model, "tagrouter.runner_up": explanation.runner_up,
        "tagrouter.chosen_utility": explanation.chosen_utility,
        "tagrouter.runner_up_utility": explanation.runner_up_utility,
        "tagrouter.anchor_model": response.anchor_model})
    attributes = {"tagrouter.model": response.model, "tagrouter.runner_up": explanation.runner_up,
                  "tagrouter.degraded": response.degraded, "tagrouter.input_tokens": response.input_tokens,
                  "tagrouter.tags": tags, "tagrouter.estimated_cost_usd": response.estimated_cost_usd,
                  "tagrouter.weights_version": response.weights_version,
                  "tagrouter.candidates": len(request.candidate_models)}
    if response.degraded:
        attributes["tagrouter.degraded_reason"] = response.degraded_reason
        fallback = "prior (no tags)" if scored else "default model (no scores)"
        with tracing.span("route.degraded", {"tagrouter.degraded_reason": response.degraded_reason,
                                             "tagrouter.fallback": fallback, "tagrouter.model": response.model}):
            log.debug("Route degraded: %s; %s answers %s", response.degraded_reason, fallback, response.model)
    tracing.annotate(attributes)
