"""The router's downstreams: the tagger and the scorer, with their health."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import open_channel
from tagrouter.scorer.v1 import scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2_grpc


class Downstreams:
    """Stubs for the router's two downstreams."""

    def __init__(self, tagger_addr: str, scorer_addr: str, credentials: grpc.ChannelCredentials | None = None):
        self.tagger_channel = open_channel(tagger_addr, credentials)
        self.scorer_channel = open_channel(scorer_addr, credentials)
        self.tagger = tagger_pb2_grpc.TaggerServiceStub(self.tagger_channel)
        self.scorer = scorer_pb2_grpc.ScorerServiceStub(self.scorer_channel)
        self.tagger_health = health_pb2_grpc.HealthStub(self.tagger_channel)
        self.scorer_health = health_pb2_grpc.HealthStub(self.scorer_channel)

    async def serving(self, timeout: float = 1.0) -> dict[str, bool]:
        """Whether each downstream reports SERVING right now."""
        result = {}
        for name, stub in (("tagger", self.tagger_health), ("scorer", self.scorer_health)):
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                result[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                result[name] = False
        return result

    async def close(self) -> None:
        await self.tagger_channel.close()
        await self.scorer_channel.close()
