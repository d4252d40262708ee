"""Wires the router service from its settings, with its Envoy external processor on a port of its own."""
from collections.abc import Mapping

from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from services.common.security import channel_credentials
from services.common.server import ServiceSpec
from services.common.settings import RouterSettings, ServerSettings, is_loopback
from services.router import extproc
from services.router.clients import Downstreams
from services.router.servicer import RouterServicer
from services.router.tenant_admin import TenantAdmin
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def create(env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The router service, configured from `env` (default: the process environment)."""
    settings = RouterSettings.from_env(env)
    credentials = None
    if settings.tls_ca_file is not None:
        credentials = channel_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
    servicer = RouterServicer(Downstreams(settings.tagger_addr, settings.scorer_addr, credentials,
                                          tag_streams=settings.tag_streams, tag_timeout_s=settings.tagger_timeout_s),
                              settings)
    server = ServerSettings.from_env("router", env)
    admin = TenantAdmin(servicer.tenants.store if servicer.tenants else None,
                        open_refused=not server.admin_token and not is_loopback(server.host))

    def add_to_server(router, grpc_server) -> None:
        router_pb2_grpc.add_RouterServiceServicer_to_server(router, grpc_server)
        router_pb2_grpc.add_TenantServiceServicer_to_server(admin, grpc_server)

    spec = ServiceSpec(SERVICE_NAME, servicer, add_to_server, start=servicer.start, stop=servicer.stop)
    if settings.extproc_port:
        spec.companions.append((extproc_spec(servicer, settings), settings.extproc_port))
    return spec


def extproc_spec(servicer: RouterServicer, settings: RouterSettings) -> ServiceSpec:
    """The external processor over `servicer`'s Route: SERVING once the router is (its health follows)."""
    return ServiceSpec(extproc.SERVICE_NAME, extproc.ExternalProcessor(servicer, settings.extproc_aliases),
                       external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server,
                       start=servicer.ready.wait)
