"""Interceptors wrap a method's handler once, not per call, and still wrap anew what an inner layer made per call."""
import asyncio
import collections

import grpc

from services.common.admission import AdmissionInterceptor, Limits
from services.common.errors import ErrorMappingInterceptor
from services.common.metrics import MetricsInterceptor
from tagrouter.tagger.v1 import tagger_pb2

Details = collections.namedtuple("Details", "method invocation_metadata")
METHOD = "/tagrouter.tagger.v1.TaggerService/Tag"


def _handler():
    async def behaviour(request, context):
        return tagger_pb2.TagResponse(input_tokens=len(request.query))

    return grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=tagger_pb2.TagRequest.FromString,
                                               response_serializer=tagger_pb2.TagResponse.SerializeToString)


def test_the_same_handler_is_wrapped_once_and_a_new_one_again():
    limits = Limits(unary=4, admin=1, streams=1, streams_per_peer=1)
    interceptors = [MetricsInterceptor("Test"), AdmissionInterceptor(limits), ErrorMappingInterceptor()]
    first, second = _handler(), _handler()

    async def intercept(inner):
        async def chain(i, details):
            if i == len(interceptors):
                return inner
            return await interceptors[i].intercept_service(lambda d: chain(i + 1, d), details)

        return await chain(0, Details(METHOD, ()))

    async def main():
        a, b, c = await intercept(first), await intercept(first), await intercept(second)
        reply = await c.unary_unary(tagger_pb2.TagRequest(query="four"), None)
        return a, b, c, reply

    a, b, c, reply = asyncio.run(main())
    assert a is b, "the same method and handler: the wrapping made for the first call serves the next"
    assert c is not a and reply.input_tokens == 4, "a handler not seen before is wrapped (and called) anew"
