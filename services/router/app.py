"""Wires the router service from its settings."""
from services.common.server import ServiceSpec
from services.common.settings import RouterSettings
from services.router.clients import Downstreams
from services.router.servicer import RouterServicer
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def create(settings: RouterSettings) -> ServiceSpec:
    servicer = RouterServicer(Downstreams(settings.tagger_addr, settings.scorer_addr), settings)
    return ServiceSpec(SERVICE_NAME, servicer, router_pb2_grpc.add_RouterServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop)
