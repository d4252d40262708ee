"""Who may change state, and transport security.

RPCs that change state (weights, pool, feedback) need `authorization: Bearer <token>` when an
admin token is configured; the token is compared in constant time. TLS, and mutual TLS when
a client CA is given, come from file paths in the settings.
"""
from __future__ import annotations

import hmac
from pathlib import Path

import grpc

from services.common.interceptors import wrap_unary

# Full method names of every RPC that changes state. A test checks each proto method is
# either here or in READ_ONLY_METHODS, so a new RPC cannot slip through unclassified.
STATE_CHANGING_METHODS = frozenset({
    "/tagrouter.scorer.v1.ScorerService/LoadWeights",
    "/tagrouter.scorer.v1.ScorerService/Feedback",
    *(f"/tagrouter.router.v1.TenantService/{m}" for m in
      ("CreateTenant", "UpdateTenant", "GetTenant", "ListTenants", "DeleteTenant")),
})
READ_ONLY_METHODS = frozenset({
    "/tagrouter.scorer.v1.ScorerService/Score",
    "/tagrouter.scorer.v1.ScorerService/GetWeights",
    "/tagrouter.scorer.v1.ScorerService/ListModels",
    "/tagrouter.scorer.v1.ScorerService/WatchWeights",
    "/tagrouter.tagger.v1.TaggerService/Tag",
    "/tagrouter.tagger.v1.TaggerService/TagBatch",
    "/tagrouter.tagger.v1.TaggerService/TagStream",
    "/tagrouter.router.v1.RouterService/Route",
    "/tagrouter.router.v1.RouterService/Settle",  # checks the tenant's own token itself
})
AUTH_METADATA_KEY = "authorization"


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata that carries the admin token."""
    return ((AUTH_METADATA_KEY, f"Bearer {token}"),)


def presented_token(metadata) -> str:
    """The token of `authorization: Bearer <token>` in call metadata ('' when absent or another scheme):
    the one parse for the admin token and the tenants' tokens. RFC 7235: the scheme is case-insensitive
    ("bearer" is "Bearer"); the token is compared exactly by whoever checks it."""
    value = next((v for k, v in (metadata or ()) if k == AUTH_METADATA_KEY), "")
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class AdminTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses state-changing RPCs without the admin token (UNAUTHENTICATED)."""

    def __init__(self, token: str):
        self._expected = token.encode()

    def _authorised(self, metadata) -> bool:
        return hmac.compare_digest(presented_token(metadata).encode(), self._expected) and bool(self._expected)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler_call_details.method not in STATE_CHANGING_METHODS:
            return handler
        authorised = self._authorised(handler_call_details.invocation_metadata)

        def wrap(inner):
            async def checked(request, context):
                if not authorised:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                        "this RPC changes state: send 'authorization: Bearer <admin token>'")
                return await inner(request, context)

            return checked

        return wrap_unary(handler, wrap)


def _read(path: Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS for a server; mutual TLS (client certificates required) when client_ca is given."""
    return grpc.ssl_server_credentials([(_read(key), _read(cert))], root_certificates=_read(client_ca),
                                       require_client_auth=client_ca is not None)


def channel_credentials(ca: Path, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    """TLS for a client: verify the server with `ca`; present cert/key for mutual TLS."""
    return grpc.ssl_channel_credentials(root_certificates=_read(ca), private_key=_read(key),
                                        certificate_chain=_read(cert))
