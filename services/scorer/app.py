"""Wires the scorer service from its settings."""
from collections.abc import Mapping

from services.common.channels import open_channel
from services.common.server import ServiceSpec
from services.common.settings import ScorerSettings
from services.common.tenant_store import TenantStore
from services.scorer.servicer import ScorerServicer
from services.scorer.store import WeightStore
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2_grpc

SERVICE_NAME = scorer_pb2.DESCRIPTOR.services_by_name["ScorerService"].full_name


def create(env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The scorer service, configured from `env` (default: the process environment)."""
    settings = ScorerSettings.from_env(env)
    tagger = None
    if settings.tagger_addr:
        tagger = tagger_pb2_grpc.TaggerServiceStub(open_channel(settings.tagger_addr))
    store = WeightStore.from_url(settings.redis_url, settings.redis_wait_replicas, settings.redis_wait_timeout_ms,
                                 settings.redis_ca_file)
    tenants = TenantStore(settings.tenant_redis_url, ca_file=settings.redis_ca_file) if settings.tenant_redis_url else None
    servicer = ScorerServicer(store, settings.weights_file, tagger, watch_deltas=settings.watch_deltas, tenants=tenants,
                              tagger_heads=settings.tagger_heads)
    return ServiceSpec(SERVICE_NAME, servicer, scorer_pb2_grpc.add_ScorerServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop, end_streams=servicer.end_watches)
