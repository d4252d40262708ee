"""RouterService: tag the query, score the models, weigh quality against price, answer.

When a downstream fails or is too slow, Route still answers, with `degraded` set:
no tags -> the scorer's per-model prior decides; no scores -> the configured default model.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

import grpc
import numpy as np

from services.common import metrics
from services.common.errors import InvalidArgument
from services.common.settings import RouterSettings
from services.router import decision
from services.router.clients import Downstreams
from services.tagger.servicer import MAX_QUERY_CHARS, check_client_tags
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2
from tagrouter.tagger.v1 import tagger_pb2

log = logging.getLogger(__name__)

MAX_CANDIDATES = 64
DEADLINE_MARGIN_S = 0.002  # leave time to decide and answer inside the caller's deadline


@dataclass
class KnownModel:
    """What the router last heard of a model, so a degraded answer can still price it."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    expected_output_tokens: float


def estimate_tokens(text: str) -> int:
    """Fallback token count when the tagger did not count: about 4 characters a token."""
    return max(1, math.ceil(len(text) / 4))


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    def __init__(self, downstreams: Downstreams, settings: RouterSettings):
        self.downstreams = downstreams
        self.settings = settings
        self.known_models: dict[str, KnownModel] = {}

    async def start(self) -> None:
        """Ready once both downstreams have answered; Route works (degraded) before that."""
        while True:
            state = await self.downstreams.serving()
            if all(state.values()):
                return
            log.info("waiting for downstreams: %s", ", ".join(k for k, ok in state.items() if not ok))
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await self.downstreams.close()

    def _validate(self, request) -> tuple[list[str], float, float]:
        if not request.query.strip():
            raise InvalidArgument("query is empty")
        if len(request.query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"query has {len(request.query)} characters, at most {MAX_QUERY_CHARS}")
        check_client_tags(request.client_tags)
        cost_weight = self.settings.default_cost_weight
        if request.HasField("cost_weight"):
            cost_weight = request.cost_weight
            if not math.isfinite(cost_weight) or cost_weight < 0:
                raise InvalidArgument(f"cost_weight must be a finite number >= 0, not {cost_weight}")
        quality_margin = self.settings.default_quality_margin
        if request.HasField("quality_margin"):
            quality_margin = request.quality_margin
            if not math.isfinite(quality_margin) or quality_margin < 0:
                raise InvalidArgument(f"quality_margin must be a finite number >= 0, not {quality_margin}")
        candidates = list(dict.fromkeys(request.candidate_models))
        if len(candidates) > MAX_CANDIDATES:
            raise InvalidArgument(f"candidate_models: {len(candidates)} models, at most {MAX_CANDIDATES}")
        if any(not c for c in candidates):
            raise InvalidArgument("candidate_models: a model name is empty")
        if self.known_models:
            unknown = [c for c in candidates if c not in self.known_models]
            if unknown:
                raise InvalidArgument(f"candidate_models: unknown model {unknown[0]!r}; the pool is "
                                      f"{', '.join(self.known_models)}")
        return candidates, cost_weight, quality_margin

    def _timeout(self, configured: float, context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return configured
        return max(0.0, min(configured, remaining - DEADLINE_MARGIN_S))

    async def Route(self, request, context):
        candidates, cost_weight, quality_margin = self._validate(request)
        reasons: list[str] = []

        tagged = None
        started = time.perf_counter()
        try:
            tagged = await self.downstreams.tagger.Tag(
                tagger_pb2.TagRequest(query=request.query, client_tags=request.client_tags),
                timeout=self._timeout(self.settings.tagger_timeout_s, context))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(err.details()) from None
            reasons.append(f"tagger unavailable ({err.code().name})")
            metrics.ROUTE_DEGRADED.labels("tagger_" + err.code().name.lower()).inc()
        tagged_at = time.perf_counter()
        metrics.ROUTE_PHASE_LATENCY.labels("tag").observe(tagged_at - started)
        tags = list(tagged.tags) if tagged else []
        input_tokens = tagged.input_tokens if tagged else estimate_tokens(request.query)

        scored = None
        try:
            scored = await self.downstreams.scorer.Score(
                scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=t.name, weight=t.score) for t in tags],
                                        candidate_models=candidates),
                timeout=self._timeout(self.settings.scorer_timeout_s, context))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(err.details()) from None
            reasons.append(f"scorer unavailable ({err.code().name})")
            metrics.ROUTE_DEGRADED.labels("scorer_" + err.code().name.lower()).inc()
        scored_at = time.perf_counter()
        metrics.ROUTE_PHASE_LATENCY.labels("score").observe(scored_at - tagged_at)

        response = router_pb2.RouteResponse(
            tags=[router_pb2.RouteTag(name=t.name, score=t.score, level=t.level, client_tag=t.client_tag) for t in tags],
            input_tokens=input_tokens, cost_weight=cost_weight, quality_margin=quality_margin,
            vocabulary_version=tagged.vocabulary_version if tagged else "",
            unaligned_client_tags=tagged.unaligned_client_tags if tagged else [])
        if scored is not None and scored.scores:
            self._decide(scored, input_tokens, cost_weight, quality_margin, response)
        else:
            self._fall_back(candidates, input_tokens, response)
        if reasons:
            response.degraded = True
            response.degraded_reason = "; ".join(reasons)
        metrics.ROUTE_PHASE_LATENCY.labels("decide").observe(time.perf_counter() - scored_at)
        metrics.ROUTED.labels(response.model).inc()
        metrics.ROUTED_COST.labels(response.model).inc(response.estimated_cost_usd)
        return response

    def _decide(self, scored, input_tokens: int, cost_weight: float, quality_margin: float, response) -> None:
        models = list(scored.scores)
        for m in models:
            self.known_models[m.model] = KnownModel(m.input_usd_per_mtok, m.output_usd_per_mtok,
                                                    m.expected_output_tokens)
        scores = np.array([m.score for m in models])
        expected = np.array([m.expected_output_tokens for m in models])
        costs = decision.estimate_costs(input_tokens, expected, np.array([m.input_usd_per_mtok for m in models]),
                                        np.array([m.output_usd_per_mtok for m in models]))
        scale = scored.cost_scale_usd
        anchor = decision.anchor(np.array([m.prior_score for m in models]),
                                 np.array([m.input_usd_per_mtok + m.output_usd_per_mtok for m in models]))
        chosen = int(decision.choose(scores, costs, cost_weight, scale, quality_margin, anchor))
        response.anchor_model = models[anchor].model
        response.explanation.CopyFrom(explain(models, decision.utilities(scores, costs, cost_weight, scale,
                                                                          quality_margin, anchor), chosen))
        response.model = models[chosen].model
        response.estimated_cost_usd = float(costs[chosen])
        response.expected_output_tokens = float(expected[chosen])
        response.weights_version = scored.weights_version
        response.scores.extend(router_pb2.RouteScore(model=m.model, score=float(s), estimated_cost_usd=float(c))
                               for m, s, c in zip(models, scores, costs))

    def _fall_back(self, candidates: list[str], input_tokens: int, response) -> None:
        default = self.settings.default_model
        model = default if not candidates or default in candidates else candidates[0]
        response.model = model
        known = self.known_models.get(model)
        if known is not None:
            response.expected_output_tokens = known.expected_output_tokens
            response.estimated_cost_usd = float(decision.estimate_costs(
                input_tokens, np.array(known.expected_output_tokens), np.array(known.input_usd_per_mtok),
                np.array(known.output_usd_per_mtok)))


def explain(models, utility: np.ndarray, chosen: int) -> router_pb2.Explanation:
    """Why `chosen`: the runner-up by utility and each tag's part in both models' scores."""
    if len(models) < 2:
        return router_pb2.Explanation(chosen_utility=float(utility[chosen]),
                                      summary=f"{models[chosen].model} is the only candidate")
    others = np.where(np.arange(len(models)) == chosen, -np.inf, utility)
    runner = int(others.argmax())
    mine = {c.tag: c.contribution for c in models[chosen].contributions}
    theirs = {c.tag: c.contribution for c in models[runner].contributions}
    reasons = [router_pb2.TagReason(tag=t, chosen_contribution=mine.get(t, 0.0), runner_up_contribution=theirs.get(t, 0.0))
               for t in dict.fromkeys([*mine, *theirs])]
    reasons.sort(key=lambda r: -abs(r.chosen_contribution - r.runner_up_contribution))
    a, b = models[chosen].model, models[runner].model
    summary = f"{a} over {b}: utility {utility[chosen]:.3f} against {utility[runner]:.3f}"
    if reasons:
        top = reasons[0]
        summary += (f"; {top.tag} weighs most ({top.chosen_contribution:+.3f} for {a}, "
                    f"{top.runner_up_contribution:+.3f} for {b})")
    else:
        summary += "; no tag of the query is known, so the models' overall rates decided"
    return router_pb2.Explanation(runner_up=b, chosen_utility=float(utility[chosen]),
                                  runner_up_utility=float(utility[runner]), tags=reasons, summary=summary)
