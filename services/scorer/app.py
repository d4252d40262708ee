"""Wires the scorer service from its settings."""
from services.common.server import ServiceSpec
from services.common.settings import ScorerSettings
from services.scorer.servicer import ScorerServicer
from services.scorer.store import WeightStore
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

SERVICE_NAME = scorer_pb2.DESCRIPTOR.services_by_name["ScorerService"].full_name


def create(settings: ScorerSettings) -> ServiceSpec:
    tagger = None
    if settings.tagger_addr:
        from services.router.clients import open_channel
        from tagrouter.tagger.v1 import tagger_pb2_grpc

        tagger = tagger_pb2_grpc.TaggerServiceStub(open_channel(settings.tagger_addr))
    servicer = ScorerServicer(WeightStore.from_url(settings.redis_url), settings.weights_file, tagger)
    return ServiceSpec(SERVICE_NAME, servicer, scorer_pb2_grpc.add_ScorerServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop, end_streams=servicer.end_watches)
