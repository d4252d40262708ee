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

from services.common import metrics, tracing
from services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable
from services.common.settings import RouterSettings
from services.common.tenant_store import TenantStore
from services.router import route_trace
from services.router.clients import Downstreams
from services.router.mirror import WeightsMirror
from services.router.sessions import SessionStore
from services.router.tenants import Gate, Plan, check_pool
from tagrouter.core import decision, limits, operating
from tagrouter.core.pool import CandidateScores
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2
from tagrouter.tagger.v1 import tagger_pb2

log = logging.getLogger(__name__)

_TAG_TIME, _SCORE_TIME, _DECIDE_TIME = (metrics.ROUTE_PHASE_LATENCY.labels(p) for p in ("tag", "score", "decide"))
MIRROR_WAIT_S = 5.0  # at start-up, for the scorer's first copy of the weights
# Time kept back from the caller's deadline to decide and answer degraded if a downstream is late:
# 2 ms, or a tenth of what remains up to 50 ms. A bare 2 ms lost the race on a busy machine: gRPC
# cancelled Route at the caller's deadline before it could answer.
DEADLINE_MARGIN_S, DEADLINE_MARGIN_SHARE, DEADLINE_MARGIN_MAX_S = 0.002, 0.1, 0.05


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
        self.mirror = WeightsMirror(downstreams.scorer) if settings.score_in_router else None
        self.sessions = SessionStore(settings.session_redis_url, settings.session_ttl_s, settings.redis_ca_file) \
            if settings.session_redis_url else None
        if self.sessions is None:
            log.info("no TAGROUTER_SESSION_REDIS_URL: Route ignores session_id (no sticky sessions)")
        self.tenants = Gate(TenantStore(settings.tenant_redis_url, settings.reservation_ttl_s, settings.redis_ca_file)) \
            if settings.tenant_redis_url else None  # None: tenancy off, Route takes no token
        self.ready = asyncio.Event()  # set once start() is done: the ext_proc reports SERVING then

    def pool(self) -> list[str]:
        """The pool's model names as last seen (the weights copy, else past answers); empty before any."""
        table = self.mirror.current() if self.mirror is not None else None
        return list(table.names) if table is not None else list(self.known_models)

    async def start(self) -> None:
        """Ready once both downstreams have answered; Route works (degraded) before that."""
        if self.mirror is not None:
            self.mirror.start()
        while True:
            state = await self.downstreams.serving()
            if all(state.values()):
                break
            log.info("waiting for downstreams: %s", ", ".join(k for k, ok in state.items() if not ok))
            await asyncio.sleep(0.5)
        if self.mirror is not None:
            # Briefly: without the copy, Route calls Score, which works too (e.g. an older scorer).
            await self.mirror.wait_current(MIRROR_WAIT_S)
        self.ready.set()

    async def stop(self) -> None:
        if self.mirror is not None:
            await self.mirror.close()
        if self.sessions is not None:
            await self.sessions.close()
        if self.tenants is not None:
            await self.tenants.store.close()
        await self.downstreams.close()

    def _validate(self, request) -> tuple[list[str], operating.KnobRequest]:
        limits.check_query(request.query)
        limits.check_client_tags(request.client_tags)
        limits.check_request_chars(request.query, request.client_tags)
        limits.check_session_id(request.session_id)
        limits.check_prompt_chars(prompt_chars(request), request.query)
        knob = operating.check_request(operating.KnobRequest(
            **{f: getattr(request, f) if request.HasField(f) else None
               for f in ("cost_weight", "quality_margin", "max_cost_pct", "min_quality_pct")}))
        candidates = limits.check_candidates(request.candidate_models)
        # Only the weights copy knows the whole pool (known_models holds the models answers named so
        # far); without it the scorer checks the names, and its refusal reaches the caller (downstream_failed).
        table = self.mirror.current() if self.mirror is not None else None
        if table is not None:
            limits.check_known_models(candidates, list(table.names))
        return candidates, knob

    def _knob(self, knob: operating.KnobRequest, calibration, response, plan: Plan | None = None) -> operating.Applied:
        """The knob applied (request, its percentage through the weights' calibration, environment,
        the weights' recommended point: `operating.resolve`), recorded in the response."""
        try:
            applied = operating.resolve(knob, self.settings.default_cost_weight, self.settings.default_quality_margin,
                                        calibration)
        except operating.NoCalibration as err:
            raise FailedPrecondition(str(err)) from None
        if plan is not None and (paced := self.tenants.paced(plan, applied.cost_weight)) is not None:
            applied = operating.Applied(paced, applied.quality_margin, "pace")
        response.cost_weight, response.quality_margin = applied.cost_weight, applied.quality_margin
        response.knob_source = applied.source
        if applied.point is not None:
            response.knob_cost_pct, response.knob_quality_pct = applied.point.cost_pct, applied.point.quality_pct
        return applied

    def _timeout(self, configured: float, context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return configured
        margin = min(max(DEADLINE_MARGIN_S, DEADLINE_MARGIN_SHARE * remaining), DEADLINE_MARGIN_MAX_S)
        return max(0.0, min(configured, remaining - margin))

    async def Route(self, request, context):
        tenant = await self.tenants.identify(context) if self.tenants is not None else None
        if tenant is not None:  # who and which models first: a model outside the pool is PERMISSION_DENIED
            check_pool(tenant, request.candidate_models)
        candidates, knob = self._validate(request)
        plan = None
        if tenant is not None:
            candidates, knob, plan = await self.tenants.admit(tenant, candidates, knob)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= DEADLINE_MARGIN_S:
            # not even the margin is left: calling the tagger with no time would only blame it
            raise DeadlineExceeded(f"the caller's deadline leaves {max(remaining, 0.0) * 1000:.1f} ms, "
                                   f"under the {DEADLINE_MARGIN_S * 1000:.0f} ms needed to answer")
        reasons: list[str] = []
        session = request.session_id if self.sessions is not None else ""
        if session and tenant is not None:  # one tenant can neither read nor pin another's conversation
            session = f"{tenant.id}\x1f{session}"
        # the session's last model is read while the tagger works: it is needed only to decide
        kept_lookup = asyncio.ensure_future(self.sessions.kept_model(session)) if session else None

        tagged = None
        started = time.perf_counter()
        with tracing.span("route.tag") as phase:
            try:
                tagged = await self.downstreams.tag(
                    tagger_pb2.TagRequest(query=request.query, client_tags=request.client_tags),
                    timeout=self._timeout(self.settings.tagger_timeout_s, context))
            except grpc.aio.AioRpcError as err:
                reasons.append(downstream_failed("tagger", err))
                tracing.fail(phase, reasons[-1])
        tagged_at = time.perf_counter()
        _TAG_TIME.observe(tagged_at - started)
        tags = list(tagged.tags) if tagged else []
        counted, fixed = (tagged.input_tokens, decision.TAGGER_FIXED_TOKENS) if tagged else \
            (estimate_tokens(request.query), 0)
        input_tokens = decision.prompt_tokens(counted, len(request.query), prompt_chars(request), fixed)

        with tracing.span("route.score"):
            scored = await self._score(tags, candidates, context, reasons)
        scored_at = time.perf_counter()
        _SCORE_TIME.observe(scored_at - tagged_at)

        kept = await kept_lookup if kept_lookup is not None else None
        response = router_pb2.RouteResponse(
            tags=[router_pb2.RouteTag(name=t.name, score=t.score, level=t.level, client_tag=t.client_tag) for t in tags],
            input_tokens=input_tokens,
            vocabulary_version=tagged.vocabulary_version if tagged else "",
            unaligned_client_tags=tagged.unaligned_client_tags if tagged else [],
            abstained=[router_pb2.RouteAbstention(level=a.level, top=a.top, probability=a.probability,
                                                  threshold=a.threshold) for a in tagged.abstained] if tagged else [])
        if scored is not None and scored.models:
            applied = self._knob(knob, scored.calibration, response, plan)
            self._decide(scored, input_tokens, applied.cost_weight, applied.quality_margin, response, kept, plan)
        else:
            # no scores: the default model answers whatever the knob; report the one asked for
            if knob.max_cost_pct is None and knob.min_quality_pct is None:
                self._knob(knob, None, response)
            self._fall_back(candidates, input_tokens, response, kept)
            if plan is not None:
                self._fall_back_within(plan, candidates, input_tokens, response)
        if plan is not None:
            known = self.known_models.get(response.model)
            await self.tenants.reserve(plan, response, (known.input_usd_per_mtok, known.output_usd_per_mtok)
                                       if known else (0.0, 0.0))
        if reasons:
            response.degraded = True
            response.degraded_reason = "; ".join(reasons)
        if session:
            metrics.ROUTE_SESSIONS.labels("new" if kept is None else "kept" if response.session_kept else "switched").inc()
            await self.sessions.remember(session, response.model)
        _DECIDE_TIME.observe(time.perf_counter() - scored_at)
        metrics.ROUTED.labels(response.model).inc()
        metrics.ROUTED_COST.labels(response.model).inc(response.estimated_cost_usd)
        if tracing.enabled():
            route_trace.record(request, response, len(tags), scored is not None, scored_at)
        return response

    async def Settle(self, request, context):
        if self.tenants is None:
            raise FailedPrecondition("tenancy is off (no TAGROUTER_TENANT_REDIS_URL): there is nothing to settle")
        cost, duplicate = await self.tenants.settle(request, context)
        return router_pb2.SettleResponse(cost_usd=cost, duplicate=duplicate)

    async def _score(self, tags, candidates: list[str], context, reasons: list[str]) -> CandidateScores | None:
        """From the weights copy when it is current, else by a Score call; None when that fails."""
        table = self.mirror.current() if self.mirror is not None else None
        if table is not None:
            metrics.ROUTE_SCORED_FROM_COPY.inc()
            tracing.annotate(route_trace.FROM_COPY)
            return table.candidates([(t.name, t.score) for t in tags], candidates)
        tracing.annotate(route_trace.FROM_SCORE_CALL)
        try:
            response = await self.downstreams.scorer.Score(
                scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=t.name, weight=t.score) for t in tags],
                                        candidate_models=candidates),
                timeout=self._timeout(self.settings.scorer_timeout_s, context))
        except grpc.aio.AioRpcError as err:
            reasons.append(downstream_failed("scorer", err))
            return None
        return CandidateScores.from_proto(response)

    def _decide(self, scored: CandidateScores, input_tokens: int, cost_weight: float, quality_margin: float,
                response, kept: str | None = None, plan: Plan | None = None) -> None:
        for j, m in enumerate(scored.models):
            self.known_models[m] = KnownModel(float(scored.input_usd_per_mtok[j]), float(scored.output_usd_per_mtok[j]),
                                              float(scored.expected_output_tokens[j]))
        costs = decision.estimate_costs(input_tokens, scored.expected_output_tokens, scored.input_usd_per_mtok,
                                        scored.output_usd_per_mtok)
        anchor = decision.anchor(scored.prior, scored.input_usd_per_mtok + scored.output_usd_per_mtok)
        # pace weighs USD on its own scale (tenancy.pace_weight); everything else on the weights'
        scale = plan.cost_scale_usd if plan is not None and plan.cost_scale_usd else scored.cost_scale_usd
        utility = decision.utilities(scored.scores, costs, cost_weight, scale, quality_margin, anchor)
        if plan is not None:  # the tenant's budget: downgrade ceiling, what still fits the caps
            at_zero = decision.utilities(scored.scores, costs, 0.0, scale, quality_margin, anchor)
            utility = np.where(plan.mask(costs, at_zero), utility, -np.inf)
        chosen = int(decision.best_of(utility, costs))
        kept_index = scored.models.index(kept) if kept in scored.models else None
        chosen, response.session_kept = decision.sticky(utility, chosen, kept_index, self.settings.session_margin)
        response.anchor_model = scored.models[anchor]
        given = {t.level for t in response.tags}  # a client tag aligned to a level the tagger abstained at
        response.explanation.CopyFrom(explain(scored, utility, chosen, [a for a in response.abstained
                                                                         if a.level not in given]))
        response.model = scored.models[chosen]
        response.estimated_cost_usd = float(costs[chosen])
        response.expected_output_tokens = float(scored.expected_output_tokens[chosen])
        response.weights_version = scored.weights_version
        response.scores.extend(router_pb2.RouteScore(model=m, score=float(s), estimated_cost_usd=float(c))
                               for m, s, c in zip(scored.models, scored.scores, costs))

    def _fall_back_within(self, plan: Plan, candidates: list[str], input_tokens: int, response) -> None:
        """A tenant's degraded answer holds to its budget as a scored one does: priced from the models
        the router has heard of, through the plan's mask (downgrade's ceiling, what still fits the
        caps), the fallback kept when allowed, else the cheapest allowed. Unpriced, it would reserve 0
        and no cap would hold: a router that knows no price refuses (fail closed, as the gateway)."""
        names = [m for m in (candidates or list(self.known_models)) if m in self.known_models]
        if response.model not in names:
            raise Unavailable(f"the scorer is unavailable and this router has no price for {response.model}: "
                              "a tenant's request cannot be held to its budget; retry")
        known = [self.known_models[m] for m in names]
        costs = decision.estimate_costs(input_tokens, np.array([k.expected_output_tokens for k in known]),
                                        np.array([k.input_usd_per_mtok for k in known]),
                                        np.array([k.output_usd_per_mtok for k in known]))
        allowed = plan.mask(costs)
        chosen = names.index(response.model)
        if not allowed[chosen] or plan.action == "downgraded":
            chosen = min(np.flatnonzero(allowed), key=lambda j: costs[j])
        response.model = names[chosen]
        response.estimated_cost_usd = float(costs[chosen])
        response.expected_output_tokens = known[chosen].expected_output_tokens

    def _fall_back(self, candidates: list[str], input_tokens: int, response, kept: str | None = None) -> None:
        default = self.settings.default_model
        model = default if not candidates or default in candidates else candidates[0]
        if kept is not None and (not candidates or kept in candidates):  # a session keeps its model
            model, response.session_kept = kept, True
        response.model = model
        known = self.known_models.get(model)
        if known is not None:
            response.expected_output_tokens = known.expected_output_tokens
            response.estimated_cost_usd = float(decision.estimate_costs(
                input_tokens, np.array(known.expected_output_tokens), np.array(known.input_usd_per_mtok),
                np.array(known.output_usd_per_mtok)))


def downstream_failed(part: str, err: grpc.aio.AioRpcError) -> str:
    """The degraded reason for a failed downstream call; the caller's own bad input is its error."""
    if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
        raise InvalidArgument(err.details()) from None
    metrics.ROUTE_DEGRADED.labels(f"{part}_{err.code().name.lower()}").inc()
    return f"{part} unavailable ({err.code().name})"


def prompt_chars(request) -> int | None:
    return request.prompt_chars if request.HasField("prompt_chars") else None


def explain(scored: CandidateScores, utility: np.ndarray, chosen: int, abstained=()) -> router_pb2.Explanation:
    """Why `chosen`: the runner-up by utility and each tag's part in both models' scores, and the levels
    the tagger left without a tag (`abstained`), which the coarser tags and the overall rates stood in for."""
    models = scored.models
    levels = " or ".join(a.level for a in abstained)
    unsure = f"; the tagger was unsure of the query's {levels} (below its threshold), so no {levels} tag weighed" \
        if levels else ""
    if len(models) < 2:
        return router_pb2.Explanation(chosen_utility=float(utility[chosen]),
                                      summary=f"{models[chosen]} is the only candidate{unsure}")
    others = np.where(np.arange(len(models)) == chosen, -np.inf, utility)
    runner = int(others.argmax())
    reasons = [router_pb2.TagReason(tag=t, chosen_contribution=float(scored.contributions[i, chosen]),
                                    runner_up_contribution=float(scored.contributions[i, runner]))
               for i, t in enumerate(scored.tags)]
    reasons.sort(key=lambda r: -abs(r.chosen_contribution - r.runner_up_contribution))
    a, b = models[chosen], models[runner]
    summary = f"{a} over {b}: utility {utility[chosen]:.3f} against {utility[runner]:.3f}"
    if reasons:
        top = reasons[0]
        summary += (f"; {top.tag} weighs most ({top.chosen_contribution:+.3f} for {a}, "
                    f"{top.runner_up_contribution:+.3f} for {b})")
    else:
        summary += "; no tag of the query is known, so the models' overall rates decided"
    summary += unsure
    return router_pb2.Explanation(runner_up=b, chosen_utility=float(utility[chosen]),
                                  runner_up_utility=float(utility[runner]), tags=reasons, summary=summary)
