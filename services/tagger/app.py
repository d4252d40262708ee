"""Wires the tagger service from its settings."""
from collections.abc import Mapping

from services.common.server import ServiceSpec
from services.common.settings import TaggerSettings
from services.tagger.servicer import TaggerServicer
from tagrouter.core.tag_model import TagModel
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

SERVICE_NAME = tagger_pb2.DESCRIPTOR.services_by_name["TaggerService"].full_name


def load_tagger(settings: TaggerSettings) -> TagModel:
    return TagModel.load(settings.model_dir, settings.vocab_dir, settings.tags_per_level, settings.min_score,
                         settings.topic_min_score, settings.intra_op_threads, use_heads=settings.use_heads)


def create(env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The tagger service, configured from `env` (default: the process environment)."""
    settings = TaggerSettings.from_env(env)
    tagger = load_tagger(settings)
    servicer = TaggerServicer(tagger, cache_size=settings.tag_cache_size)
    return ServiceSpec(SERVICE_NAME, servicer, tagger_pb2_grpc.add_TaggerServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop, end_streams=servicer.end_streams)
