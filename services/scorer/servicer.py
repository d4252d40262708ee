"""ScorerService: a query's tags -> a score per model, from counts in Redis."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import redis.exceptions

from services.common import metrics
from services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable
from services.scorer.store import LoadAbandoned, WeightStore
from services.scorer.watch import WeightsBroadcast
from tagrouter.core import limits, scoring, tenancy
from tagrouter.core.operating import Calibration
from tagrouter.core.pool import CandidateScores, distinct_tags
from tagrouter.core.scoring import ALL_QUERIES_TAG, ScoringParams
from tagrouter.core.weights import ModelPrice, Weights, WeightsError, counts_matrix, tagger_mismatch, validate_name
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2

log = logging.getLogger(__name__)

# A load switches versions only with this much of the caller's deadline left: the switch and the
# reply fit in it, so a caller that gets DEADLINE_EXCEEDED finds the previous weights active.
LOAD_SWITCH_MARGIN_SECONDS = 0.25


def _caller_waits(context) -> bool:
    """The caller has not cancelled and has at least LOAD_SWITCH_MARGIN_SECONDS of its deadline left."""
    if context is None:
        return True
    if context.cancelled() or context.done():
        return False
    remaining = context.time_remaining()
    return remaining is None or remaining > LOAD_SWITCH_MARGIN_SECONDS


@dataclass(frozen=True)
class Pool:
    """The active version's models and parameters, cached between loads."""

    version: str
    models: list[ModelPrice]
    params: ScoringParams
    calibration: Calibration | None = None
    provenance: str = ""

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]


class ScorerServicer(scorer_pb2_grpc.ScorerServiceServicer):
    def __init__(self, store: WeightStore, weights_file: Path | None, tagger=None, watch_deltas: bool = True,
                 tenants=None, tagger_heads: bool = False):
        self.store = store
        self.tenants = tenants  # a TenantStore (TAGROUTER_TENANT_REDIS_URL): Feedback settles route_request_id
        self.weights_file = weights_file
        self.tagger = tagger  # a TaggerService stub, for Feedback by query; None when not configured
        self.tagger_heads = tagger_heads  # what the served tagger is, to say when weights were fitted on another
        self._pool: Pool | None = None
        self._broadcast = WeightsBroadcast(store, deltas=watch_deltas)

    async def start(self) -> None:
        """Ready once Redis answers and holds weights (the starter file is loaded if it holds none)."""
        while True:
            try:
                await self.store.ping()
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as err:
                log.warning("waiting for Redis: %s", err)
                await asyncio.sleep(0.5)
        if await self.store.active_version() is None and self.weights_file is not None:
            weights = Weights.load(self.weights_file)
            version = await self.store.load(weights)
            log.info("loaded %s into an empty store as version %s", self.weights_file, version)
        pool = await self._pool_for(await self.store.active_version())
        self._warn_if_fitted_on_another_tagger(pool.provenance, pool.version)

    async def stop(self) -> None:
        await self.store.close()

    def _warn_if_fitted_on_another_tagger(self, provenance: str, version: str) -> None:
        if (why := tagger_mismatch(provenance, self.tagger_heads)) is not None:
            log.warning("weights version %s: %s", version, why)

    async def _pool_for(self, version: str | None) -> Pool:
        if version is None:
            raise Unavailable("no weights are loaded: run `tagrouter fit --suite DIR --scorer ADDR`")
        if self._pool is None or self._pool.version != version:
            meta = await self.store.read_meta(version)
            if meta is None:
                raise Unavailable(f"weights version {version} disappeared while reading; retry")
            models, params, provenance, calibration = meta
            self._pool = Pool(version, models, params, calibration, provenance)
        return self._pool

    async def Score(self, request, context):
        pairs = [(t.name, t.weight) for t in request.tags]
        limits.check_weighted_tags(pairs)
        tags, confidence = distinct_tags(pairs)
        limits.check_tag_count(len(tags))
        candidates = limits.check_candidates(request.candidate_models)
        version, per_tag = await self.store.read_tags(tags + [ALL_QUERIES_TAG])
        pool = await self._pool_for(version)
        counts = counts_matrix(per_tag, pool.names)
        all_counts, counts = counts[-1], counts[:-1]
        known = np.array([bool(h) for h in per_tag[:-1]], dtype=bool)
        scored = scoring.score_query(counts, all_counts, confidence * known, tags, pool.params)
        chosen = CandidateScores.select(scored, tags, pool.models, candidates, pool.version, pool.params,
                                        pool.calibration)
        return chosen.to_proto(unknown_tags=[t for t, k in zip(tags, known) if not k])

    async def LoadWeights(self, request, context):
        try:
            weights = Weights.from_proto(request.weights)
        except WeightsError as err:
            raise InvalidArgument(str(err)) from None
        if not _caller_waits(context):
            raise DeadlineExceeded("the caller's deadline passed before the weights were written; nothing was loaded")
        try:
            version = await self.store.load(weights, still_wanted=lambda: _caller_waits(context))
        except LoadAbandoned as err:
            log.warning("LoadWeights abandoned: %s", err)
            raise DeadlineExceeded(f"{err}; the previous weights stay active") from None
        log.info("loaded weights version %s (%d tags, %d models)", version, len(weights.counts), len(weights.models))
        self._warn_if_fitted_on_another_tagger(weights.provenance, version)
        await self._pool_for(version)
        return scorer_pb2.LoadWeightsResponse(version=version, tags=len(weights.counts), models=len(weights.models))

    async def GetWeights(self, request, context):
        names = limits.check_get_weights_tags(request.tags)
        weights = await self.store.read_weights(names or None)
        if weights is None:
            raise Unavailable("no weights are loaded")
        return weights.to_proto()

    async def end_watches(self) -> None:
        await self._broadcast.close()

    async def WatchWeights(self, request, context):
        async for update in self._broadcast.watch():
            yield update

    async def ListModels(self, request, context):
        pool = await self._pool_for(await self.store.active_version())
        return scorer_pb2.ListModelsResponse(
            weights_version=pool.version,
            models=[scorer_pb2.Model(name=m.name, input_usd_per_mtok=m.input_usd_per_mtok,
                                     output_usd_per_mtok=m.output_usd_per_mtok) for m in pool.models])

    async def _settle(self, request_id: str, output_tokens: float) -> None:
        """Settle a tenant's routed request from the judged answer's length (once; unknown ids are ignored)."""
        amount = await self.tenants.price(request_id, None, output_tokens)
        if amount is not None:  # the outcome is already counted: a price past the settle bound is held at it
            await self.tenants.settle(request_id, min(amount, tenancy.to_nano(tenancy.MAX_SETTLE_USD)))

    async def Feedback(self, request, context):
        """One judged answer -> its win/tie/loss counts and +1 answer for (each of the query's tags and `*`,
        model), atomically."""
        outcome = _feedback_outcome(request)
        if not request.model:
            raise InvalidArgument("model is empty")
        length = None
        if request.HasField("output_tokens"):
            length = limits.check_output_tokens(request.output_tokens)
        subject = request.WhichOneof("subject")
        if subject == "tags":
            tags = list(request.tags.names)
        elif subject == "query":
            tags = await self._tag(request.query)
        else:
            raise InvalidArgument("give the query or its tags")
        for tag in tags:
            try:
                validate_name("tag", tag)
            except WeightsError as err:
                raise InvalidArgument(f"tags: {err}") from None
        tags = list(dict.fromkeys(t for t in tags if t != ALL_QUERIES_TAG))
        limits.check_tag_count(len(tags))
        tags.append(ALL_QUERIES_TAG)
        if len(request.feedback_id) > limits.MAX_FEEDBACK_ID or not request.feedback_id.isprintable():
            raise InvalidArgument(f"feedback_id must be at most {limits.MAX_FEEDBACK_ID} printable characters")
        version, known, duplicate = await self.store.add_outcome(tags, request.model, outcome, length,
                                                                 request.feedback_id)
        if version is None:
            raise Unavailable("no weights are loaded")
        if not known:
            pool = await self._pool_for(version)
            limits.check_known_models([request.model], pool.names, "model",
                                      " (a new model joins with `tagrouter fit --add`)")
        if not duplicate:  # a refused or repeated Feedback settles nothing either
            if request.route_request_id and length is not None and self.tenants is not None:
                await self._settle(request.route_request_id, length)
            for name, n in zip(("win", "tie", "loss"), outcome):
                if n:
                    metrics.FEEDBACK.labels(name).inc(n)
        return scorer_pb2.FeedbackResponse(weights_version=version, tags=tags, duplicate=duplicate)

    async def _tag(self, query: str) -> list[str]:
        if self.tagger is None:
            raise FailedPrecondition("this scorer has no FEEDBACK_TAGGER_ADDR: send the query's tags instead of the query")
        if not query.strip():
            raise InvalidArgument("query is empty")
        try:
            reply = await self.tagger.Tag(tagger_pb2.TagRequest(query=query), timeout=5)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(err.details()) from None
            raise Unavailable(f"the tagger did not answer ({err.code().name}); retry, or send the tags") from None
        return [t.name for t in reply.tags]


FEEDBACK_OUTCOMES = {scorer_pb2.OUTCOME_WIN: (1, 0, 0), scorer_pb2.OUTCOME_TIE: (0, 1, 0),
                     scorer_pb2.OUTCOME_LOSS: (0, 0, 1)}


def _feedback_outcome(request) -> tuple[int, int, int]:
    """(wins, ties, losses) of a FeedbackRequest: its one `outcome`, or its `outcomes` counts."""
    if request.HasField("outcomes"):
        if request.outcome != scorer_pb2.OUTCOME_UNSPECIFIED:
            raise InvalidArgument("give outcome or outcomes, not both")
        c = request.outcomes
        counts = (c.wins, c.ties, c.losses)
        if sum(counts) < 1 or max(counts) > limits.MAX_MODELS:
            raise InvalidArgument(f"outcomes: at least one comparison, at most {limits.MAX_MODELS} of each outcome")
        return counts
    outcome = FEEDBACK_OUTCOMES.get(request.outcome)
    if outcome is None:
        raise InvalidArgument("outcome must be OUTCOME_WIN, OUTCOME_TIE or OUTCOME_LOSS (or give outcomes)")
    return outcome
