"""Client channels to another service: one long-lived channel each, reused by every call."""
from __future__ import annotations

import grpc

from services.common import tracing

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
    interceptors = tracing.client_interceptors()  # None when tracing is off: no per-call cost
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
