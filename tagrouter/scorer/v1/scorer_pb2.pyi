from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_WIN: _ClassVar[Outcome]
    OUTCOME_TIE: _ClassVar[Outcome]
    OUTCOME_LOSS: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_WIN: Outcome
OUTCOME_TIE: Outcome
OUTCOME_LOSS: Outcome

class WeightedTag(_message.Message):
    __slots__ = ("name", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: float
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("tags", "candidate_models")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[WeightedTag]
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[_Union[WeightedTag, _Mapping]]] = ..., candidate_models: _Optional[_Iterable[str]] = ...) -> None: ...

class TagContribution(_message.Message):
    __slots__ = ("tag", "contribution")
    TAG_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    tag: str
    contribution: float
    def __init__(self, tag: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

class ModelScore(_message.Message):
    __slots__ = ("model", "score", "expected_output_tokens", "input_usd_per_mtok", "output_usd_per_mtok", "contributions", "prior_score")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    model: str
    score: float
    expected_output_tokens: float
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    contributions: _containers.RepeatedCompositeFieldContainer[TagContribution]
    prior_score: float
    def __init__(self, model: _Optional[str] = ..., score: _Optional[float] = ..., expected_output_tokens: _Optional[float] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ..., contributions: _Optional[_Iterable[_Union[TagContribution, _Mapping]]] = ..., prior_score: _Optional[float] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("scores", "weights_version", "unknown_tags", "cost_scale_usd", "calibration")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_TAGS_FIELD_NUMBER: _ClassVar[int]
    COST_SCALE_USD_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ModelScore]
    weights_version: str
    unknown_tags: _containers.RepeatedScalarFieldContainer[str]
    cost_scale_usd: float
    calibration: Calibration
    def __init__(self, scores: _Optional[_Iterable[_Union[ModelScore, _Mapping]]] = ..., weights_version: _Optional[str] = ..., unknown_tags: _Optional[_Iterable[str]] = ..., cost_scale_usd: _Optional[float] = ..., calibration: _Optional[_Union[Calibration, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "input_usd_per_mtok", "output_usd_per_mtok")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    def __init__(self, name: _Optional[str] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ...) -> None: ...

class TagCount(_message.Message):
    __slots__ = ("tag", "model", "win", "tie", "loss", "answers", "output_tokens")
    TAG_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WIN_FIELD_NUMBER: _ClassVar[int]
    TIE_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    tag: str
    model: str
    win: float
    tie: float
    loss: float
    answers: float
    output_tokens: float
    def __init__(self, tag: _Optional[str] = ..., model: _Optional[str] = ..., win: _Optional[float] = ..., tie: _Optional[float] = ..., loss: _Optional[float] = ..., answers: _Optional[float] = ..., output_tokens: _Optional[float] = ...) -> None: ...

class ScoringParams(_message.Message):
    __slots__ = ("win_reward", "tie_reward", "loss_reward", "prior_strength", "cost_scale_usd", "tag_evidence", "level_weight_domain", "level_weight_topic", "level_weight_attr", "length_prior_strength")
    WIN_REWARD_FIELD_NUMBER: _ClassVar[int]
    TIE_REWARD_FIELD_NUMBER: _ClassVar[int]
    LOSS_REWARD_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    COST_SCALE_USD_FIELD_NUMBER: _ClassVar[int]
    TAG_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_WEIGHT_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    LEVEL_WEIGHT_TOPIC_FIELD_NUMBER: _ClassVar[int]
    LEVEL_WEIGHT_ATTR_FIELD_NUMBER: _ClassVar[int]
    LENGTH_PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    win_reward: float
    tie_reward: float
    loss_reward: float
    prior_strength: float
    cost_scale_usd: float
    tag_evidence: float
    level_weight_domain: float
    level_weight_topic: float
    level_weight_attr: float
    length_prior_strength: float
    def __init__(self, win_reward: _Optional[float] = ..., tie_reward: _Optional[float] = ..., loss_reward: _Optional[float] = ..., prior_strength: _Optional[float] = ..., cost_scale_usd: _Optional[float] = ..., tag_evidence: _Optional[float] = ..., level_weight_domain: _Optional[float] = ..., level_weight_topic: _Optional[float] = ..., level_weight_attr: _Optional[float] = ..., length_prior_strength: _Optional[float] = ...) -> None: ...

class Weights(_message.Message):
    __slots__ = ("version", "models", "params", "counts", "provenance", "calibration")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    version: str
    models: _containers.RepeatedCompositeFieldContainer[Model]
    params: ScoringParams
    counts: _containers.RepeatedCompositeFieldContainer[TagCount]
    provenance: str
    calibration: Calibration
    def __init__(self, version: _Optional[str] = ..., models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., params: _Optional[_Union[ScoringParams, _Mapping]] = ..., counts: _Optional[_Iterable[_Union[TagCount, _Mapping]]] = ..., provenance: _Optional[str] = ..., calibration: _Optional[_Union[Calibration, _Mapping]] = ...) -> None: ...

class OperatingPoint(_message.Message):
    __slots__ = ("cost_weight", "quality_margin", "cost_pct", "quality_pct")
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    COST_PCT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_PCT_FIELD_NUMBER: _ClassVar[int]
    cost_weight: float
    quality_margin: float
    cost_pct: float
    quality_pct: float
    def __init__(self, cost_weight: _Optional[float] = ..., quality_margin: _Optional[float] = ..., cost_pct: _Optional[float] = ..., quality_pct: _Optional[float] = ...) -> None: ...

class Calibration(_message.Message):
    __slots__ = ("points", "recommended", "rule")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[OperatingPoint]
    recommended: OperatingPoint
    rule: str
    def __init__(self, points: _Optional[_Iterable[_Union[OperatingPoint, _Mapping]]] = ..., recommended: _Optional[_Union[OperatingPoint, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class LoadWeightsRequest(_message.Message):
    __slots__ = ("weights",)
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: Weights
    def __init__(self, weights: _Optional[_Union[Weights, _Mapping]] = ...) -> None: ...

class LoadWeightsResponse(_message.Message):
    __slots__ = ("version", "tags", "models")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    version: str
    tags: int
    models: int
    def __init__(self, version: _Optional[str] = ..., tags: _Optional[int] = ..., models: _Optional[int] = ...) -> None: ...

class GetWeightsRequest(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "weights_version")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    weights_version: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., weights_version: _Optional[str] = ...) -> None: ...

class TagList(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("query", "tags", "model", "outcome", "output_tokens", "feedback_id", "route_request_id", "outcomes")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    query: str
    tags: TagList
    model: str
    outcome: Outcome
    output_tokens: float
    feedback_id: str
    route_request_id: str
    outcomes: OutcomeCounts
    def __init__(self, query: _Optional[str] = ..., tags: _Optional[_Union[TagList, _Mapping]] = ..., model: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., output_tokens: _Optional[float] = ..., feedback_id: _Optional[str] = ..., route_request_id: _Optional[str] = ..., outcomes: _Optional[_Union[OutcomeCounts, _Mapping]] = ...) -> None: ...

class OutcomeCounts(_message.Message):
    __slots__ = ("wins", "ties", "losses")
    WINS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    wins: int
    ties: int
    losses: int
    def __init__(self, wins: _Optional[int] = ..., ties: _Optional[int] = ..., losses: _Optional[int] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("weights_version", "tags", "duplicate")
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    weights_version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    duplicate: bool
    def __init__(self, weights_version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class WatchWeightsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WeightsUpdate(_message.Message):
    __slots__ = ("weights", "heartbeat_seconds", "sequence", "delta", "changes_after_unix_nanos")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    CHANGES_AFTER_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    weights: Weights
    heartbeat_seconds: float
    sequence: int
    delta: WeightsDelta
    changes_after_unix_nanos: int
    def __init__(self, weights: _Optional[_Union[Weights, _Mapping]] = ..., heartbeat_seconds: _Optional[float] = ..., sequence: _Optional[int] = ..., delta: _Optional[_Union[WeightsDelta, _Mapping]] = ..., changes_after_unix_nanos: _Optional[int] = ...) -> None: ...

class WeightsDelta(_message.Message):
    __slots__ = ("version", "base_sequence", "counts")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    version: str
    base_sequence: int
    counts: _containers.RepeatedCompositeFieldContainer[TagCount]
    def __init__(self, version: _Optional[str] = ..., base_sequence: _Optional[int] = ..., counts: _Optional[_Iterable[_Union[TagCount, _Mapping]]] = ...) -> None: ...
