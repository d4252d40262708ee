"""`tagrouter replay`: a suite's outcomes on one split sent through the scorer's Feedback RPC.

The store should hold the suite's pool and no counts: `--load-pool` loads exactly that first
(the suite's models and prices, default scoring parameters or those of `--params-from`).
Queries are tagged as `tagrouter fit --no-tune` and `fit --add` tag them (the tagger as the
environment configures the served one), so the counts end equal to fit's (tagrouter/offline/replay.py).
Calls run `--concurrency` at a time; a call that fails with a transient status is resent with
the same Feedback id (counted once however often it is resent), up to `--retries` times.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tagrouter.cli.common import add_suite_arguments, bounded, eval_tagger, fail, load_suite_or_fail

TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL")


def _send(stub, answer, metadata, retries: int) -> bool:
    """One answer as one Feedback call (resent on transient errors); True when it was a duplicate."""
    import grpc

    from tagrouter.scorer.v1 import scorer_pb2

    w, t, losses = answer.outcomes
    request = scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=list(answer.tags)), model=answer.model,
                                         outcomes=scorer_pb2.OutcomeCounts(wins=w, ties=t, losses=losses),
                                         output_tokens=answer.output_tokens, feedback_id=answer.feedback_id)
    for attempt in range(retries + 1):
        try:
            return stub.Feedback(request, timeout=30, metadata=metadata).duplicate
        except grpc.RpcError as err:
            if err.code().name not in TRANSIENT or attempt == retries:
                raise
            time.sleep(min(0.1 * 2 ** attempt, 5.0))
    return False


def cmd_replay(args) -> int:
    import grpc

    from services.common.security import bearer
    from tagrouter.core.weights import Weights, WeightsError
    from tagrouter.offline.replay import answers, pool_weights
    from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

    suite, error = load_suite_or_fail(args.suite)
    if suite is None:
        return error
    token = (args.admin_token or os.environ.get("TAGROUTER_ADMIN_TOKEN", "")).strip()
    metadata = bearer(token) if token else None
    with grpc.insecure_channel(args.scorer) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        try:
            if args.load_pool:
                params = None
                if args.params_from:
                    try:
                        params = Weights.load(args.params_from).params
                    except WeightsError as err:
                        return fail(str(err))
                stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=pool_weights(suite, params).to_proto()),
                                 timeout=60, metadata=metadata)
            listed = stub.ListModels(scorer_pb2.ListModelsRequest(), timeout=10)
        except grpc.RpcError as err:
            return fail(f"the scorer at {args.scorer}: {err.code().name}: {err.details()}", 1)
        missing = sorted(set(suite.model_names) - {m.name for m in listed.models})
        if missing:
            return fail(f"the scorer's pool lacks {', '.join(missing)}: load the pool first (--load-pool)")
        tagged = eval_tagger().tag_many(suite.queries)
        todo = answers(suite, [[n for n, _, _ in t.tags] for t in tagged], args.split,
                       f"{listed.weights_version}|{suite.name}|{args.split}")
        try:
            with ThreadPoolExecutor(args.concurrency) as pool:
                duplicates = sum(pool.map(lambda a: _send(stub, a, metadata, args.retries), todo))
        except grpc.RpcError as err:
            return fail(f"Feedback failed: {err.code().name}: {err.details()}", 1)
    print(f"replayed {len(todo)} answers of {suite.name} ({args.split}: {len(suite.rows(args.split))} queries x "
          f"{len(suite.models)} models) into weights {listed.weights_version}: {len(todo) - duplicates} counted, "
          f"{duplicates} already counted before")
    return 0


OPTIONS = (
    ("--scorer", {"required": True, "help": "the scorer at host:port"}),
    ("--admin-token", {"help": "the admin token (default $TAGROUTER_ADMIN_TOKEN)"}),
    ("--load-pool", {"action": "store_true", "help": "first load the suite's pool with no counts (a new version)"}),
    ("--params-from", {"type": Path, "help": "with --load-pool: take the scoring parameters of these weights"}),
    ("--concurrency", {"type": bounded(int, 1), "default": 8, "help": "Feedback calls in flight (default 8)"}),
    ("--retries", {"type": bounded(int, 0), "default": 5, "help": "resends of a call that fails transiently (default 5)"}),
)


def add_parsers(sub) -> None:
    p = sub.add_parser("replay", help="send a suite's outcomes on one split through the scorer's Feedback RPC")
    add_suite_arguments(p)
    for flag, options in OPTIONS:
        p.add_argument(flag, **options)
    p.set_defaults(func=cmd_replay)
