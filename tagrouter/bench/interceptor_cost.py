"""What the server interceptors cost per call, without gRPC around them: the metrics, admission and
error-mapping interceptors chained as every service chains them, `intercept_service` then the
wrapped behaviour, against the bare behaviour (docs/BENCHMARKS.md, issue 21):

    python -m tagrouter.bench.interceptor_cost [--calls 20000]

Run it on two checkouts (e.g. a worktree of an older commit with PYTHONPATH) to compare.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time

import grpc

from services.common.admission import AdmissionInterceptor, Limits
from services.common.errors import ErrorMappingInterceptor
from services.common.metrics import MetricsInterceptor
from tagrouter.tagger.v1 import tagger_pb2

Details = collections.namedtuple("Details", "method invocation_metadata")


async def measure(calls: int) -> dict:
    async def behaviour(request, context):
        return request

    handler = grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=tagger_pb2.TagRequest.FromString,
                                                  response_serializer=tagger_pb2.TagResponse.SerializeToString)
    interceptors = [MetricsInterceptor("Bench"), AdmissionInterceptor(Limits(unary=100, admin=10, streams=10,
                                                                             streams_per_peer=5)),
                    ErrorMappingInterceptor()]

    async def chain(i: int, details):
        if i == len(interceptors):
            return handler
        return await interceptors[i].intercept_service(lambda d: chain(i + 1, d), details)

    details, request = Details("/tagrouter.tagger.v1.TaggerService/Tag", ()), tagger_pb2.TagRequest(query="q")
    t0 = time.perf_counter()
    for _ in range(calls):
        wrapped = await chain(0, details)
    t1 = time.perf_counter()
    for _ in range(calls):
        await wrapped.unary_unary(request, None)
    t2 = time.perf_counter()
    for _ in range(calls):
        await handler.unary_unary(request, None)
    t3 = time.perf_counter()
    per_call_us = [round((b - a) / calls * 1e6, 2) for a, b in ((t0, t1), (t1, t2), (t2, t3))]
    return {"calls": calls, **dict(zip(("intercept_service_us", "wrapped_behaviour_us", "bare_behaviour_us"), per_call_us))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    print(json.dumps(asyncio.run(measure(parser.parse_args().calls))))


if __name__ == "__main__":
    main()
