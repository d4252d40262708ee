from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("query", "candidate_models", "cost_weight", "client_tags", "quality_margin", "max_cost_pct", "min_quality_pct", "session_id")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TAGS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_PCT_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_PCT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    query: str
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    cost_weight: float
    client_tags: _containers.RepeatedScalarFieldContainer[str]
    quality_margin: float
    max_cost_pct: float
    min_quality_pct: float
    session_id: str
    def __init__(self, query: _Optional[str] = ..., candidate_models: _Optional[_Iterable[str]] = ..., cost_weight: _Optional[float] = ..., client_tags: _Optional[_Iterable[str]] = ..., quality_margin: _Optional[float] = ..., max_cost_pct: _Optional[float] = ..., min_quality_pct: _Optional[float] = ..., session_id: _Optional[str] = ...) -> None: ...

class RouteTag(_message.Message):
    __slots__ = ("name", "score", "level", "client_tag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    level: str
    client_tag: str
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ..., level: _Optional[str] = ..., client_tag: _Optional[str] = ...) -> None: ...

class RouteScore(_message.Message):
    __slots__ = ("model", "score", "estimated_cost_usd")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    model: str
    score: float
    estimated_cost_usd: float
    def __init__(self, model: _Optional[str] = ..., score: _Optional[float] = ..., estimated_cost_usd: _Optional[float] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("model", "estimated_cost_usd", "tags", "scores", "degraded", "degraded_reason", "input_tokens", "expected_output_tokens", "cost_weight", "weights_version", "vocabulary_version", "explanation", "unaligned_client_tags", "quality_margin", "anchor_model", "knob_source", "knob_cost_pct", "knob_quality_pct", "session_kept")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    UNALIGNED_CLIENT_TAGS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    KNOB_SOURCE_FIELD_NUMBER: _ClassVar[int]
    KNOB_COST_PCT_FIELD_NUMBER: _ClassVar[int]
    KNOB_QUALITY_PCT_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    estimated_cost_usd: float
    tags: _containers.RepeatedCompositeFieldContainer[RouteTag]
    scores: _containers.RepeatedCompositeFieldContainer[RouteScore]
    degraded: bool
    degraded_reason: str
    input_tokens: int
    expected_output_tokens: float
    cost_weight: float
    weights_version: str
    vocabulary_version: str
    explanation: Explanation
    unaligned_client_tags: _containers.RepeatedScalarFieldContainer[str]
    quality_margin: float
    anchor_model: str
    knob_source: str
    knob_cost_pct: float
    knob_quality_pct: float
    session_kept: bool
    def __init__(self, model: _Optional[str] = ..., estimated_cost_usd: _Optional[float] = ..., tags: _Optional[_Iterable[_Union[RouteTag, _Mapping]]] = ..., scores: _Optional[_Iterable[_Union[RouteScore, _Mapping]]] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ..., input_tokens: _Optional[int] = ..., expected_output_tokens: _Optional[float] = ..., cost_weight: _Optional[float] = ..., weights_version: _Optional[str] = ..., vocabulary_version: _Optional[str] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ..., unaligned_client_tags: _Optional[_Iterable[str]] = ..., quality_margin: _Optional[float] = ..., anchor_model: _Optional[str] = ..., knob_source: _Optional[str] = ..., knob_cost_pct: _Optional[float] = ..., knob_quality_pct: _Optional[float] = ..., session_kept: _Optional[bool] = ...) -> None: ...

class TagReason(_message.Message):
    __slots__ = ("tag", "chosen_contribution", "runner_up_contribution")
    TAG_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    tag: str
    chosen_contribution: float
    runner_up_contribution: float
    def __init__(self, tag: _Optional[str] = ..., chosen_contribution: _Optional[float] = ..., runner_up_contribution: _Optional[float] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("runner_up", "chosen_utility", "runner_up_utility", "tags", "summary")
    RUNNER_UP_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_UTILITY_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_UTILITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    runner_up: str
    chosen_utility: float
    runner_up_utility: float
    tags: _containers.RepeatedCompositeFieldContainer[TagReason]
    summary: str
    def __init__(self, runner_up: _Optional[str] = ..., chosen_utility: _Optional[float] = ..., runner_up_utility: _Optional[float] = ..., tags: _Optional[_Iterable[_Union[TagReason, _Mapping]]] = ..., summary: _Optional[str] = ...) -> None: ...
