"""Wires the tagger service from its settings."""
from services.common.server import ServiceSpec
from services.common.settings import TaggerSettings
from services.tagger.encoder import Encoder
from services.tagger.servicer import TaggerServicer
from services.tagger.tagger import Tagger
from services.tagger.vocabulary import Vocabulary
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

SERVICE_NAME = tagger_pb2.DESCRIPTOR.services_by_name["TaggerService"].full_name


def load_tagger(settings: TaggerSettings) -> Tagger:
    encoder = Encoder(settings.model_dir, settings.intra_op_threads)
    return Tagger(encoder, Vocabulary.load(settings.vocab_dir), settings.tags_per_level, settings.min_score,
                  topic_min_score=settings.topic_min_score)


def create(settings: TaggerSettings) -> ServiceSpec:
    servicer = TaggerServicer(load_tagger(settings), cache_size=settings.tag_cache_size)
    return ServiceSpec(SERVICE_NAME, servicer, tagger_pb2_grpc.add_TaggerServiceServicer_to_server,
                       start=servicer.start, stop=servicer.stop)
