"""Channels to the tagger and the scorer: one long-lived channel each, reused by every call."""
from __future__ import annotations

import grpc

from grpc_health.v1 import health_pb2, health_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2_grpc

# dns:/// with round_robin spreads calls over every pod behind a headless Service;
# a plain ClusterIP would pin the long-lived HTTP/2 connection to one pod.
CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # Reconnect within a second of a downstream coming back (the default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def open_channel(address: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.aio.Channel:
    target = address if "://" in address or address.startswith("dns:") else f"dns:///{address}"
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


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
