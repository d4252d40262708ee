"""Wires the router service from its settings."""
from collections.abc import Mapping

from services.common.security import channel_credentials
from services.common.server import ServiceSpec
from services.common.settings import RouterSettings
from services.router.clients import Downstreams
from services.router.servicer import RouterServicer
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def create(env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The router service, configured from `env` (default: the process environment)."""
    settings = RouterSettings.from_env(env)
    credentials = None
    if settings.tls_ca_file is not None:
        credentials = channel_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
    servicer = RouterServicer(Downstreams(settings.tagger_addr, settings.scorer_addr, credentials), settings)
    return ServiceSpec(SERVICE_NAME, servicer, router_pb2_grpc.add_RouterServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop)
