from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SettleRequest(_message.Message):
    __slots__ = ("request_id", "cost_usd", "input_tokens", "output_tokens")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    cost_usd: float
    input_tokens: int
    output_tokens: float
    def __init__(self, request_id: _Optional[str] = ..., cost_usd: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[float] = ...) -> None: ...

class SettleResponse(_message.Message):
    __slots__ = ("cost_usd", "duplicate")
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    cost_usd: float
    duplicate: bool
    def __init__(self, cost_usd: _Optional[float] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("window", "usd")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    USD_FIELD_NUMBER: _ClassVar[int]
    window: str
    usd: float
    def __init__(self, window: _Optional[str] = ..., usd: _Optional[float] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("id", "name", "allowed_models", "cost_weight", "quality_margin", "budgets", "mode", "downgrade_at_pct", "downgrade_max_cost_usd", "tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MODELS_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DOWNGRADE_AT_PCT_FIELD_NUMBER: _ClassVar[int]
    DOWNGRADE_MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    allowed_models: _containers.RepeatedScalarFieldContainer[str]
    cost_weight: float
    quality_margin: float
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    mode: str
    downgrade_at_pct: float
    downgrade_max_cost_usd: float
    tokens: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., allowed_models: _Optional[_Iterable[str]] = ..., cost_weight: _Optional[float] = ..., quality_margin: _Optional[float] = ..., budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., mode: _Optional[str] = ..., downgrade_at_pct: _Optional[float] = ..., downgrade_max_cost_usd: _Optional[float] = ..., tokens: _Optional[int] = ...) -> None: ...

class TenantRequest(_message.Message):
    __slots__ = ("tenant", "update_fields", "new_token", "revoke_old_tokens")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    NEW_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVOKE_OLD_TOKENS_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    update_fields: _containers.RepeatedScalarFieldContainer[str]
    new_token: bool
    revoke_old_tokens: bool
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ..., update_fields: _Optional[_Iterable[str]] = ..., new_token: _Optional[bool] = ..., revoke_old_tokens: _Optional[bool] = ...) -> None: ...

class WindowUsage(_message.Message):
    __slots__ = ("window", "budget_usd", "spend_usd", "reserved_usd", "spend_nano_usd", "reserved_nano_usd", "resets_at")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_USD_FIELD_NUMBER: _ClassVar[int]
    RESERVED_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    RESERVED_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    RESETS_AT_FIELD_NUMBER: _ClassVar[int]
    window: str
    budget_usd: float
    spend_usd: float
    reserved_usd: float
    spend_nano_usd: int
    reserved_nano_usd: int
    resets_at: int
    def __init__(self, window: _Optional[str] = ..., budget_usd: _Optional[float] = ..., spend_usd: _Optional[float] = ..., reserved_usd: _Optional[float] = ..., spend_nano_usd: _Optional[int] = ..., reserved_nano_usd: _Optional[int] = ..., resets_at: _Optional[int] = ...) -> None: ...

class TenantResponse(_message.Message):
    __slots__ = ("tenant", "token", "usage", "paced_cost_weight")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    PACED_COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    token: str
    usage: _containers.RepeatedCompositeFieldContainer[WindowUsage]
    paced_cost_weight: float
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ..., token: _Optional[str] = ..., usage: _Optional[_Iterable[_Union[WindowUsage, _Mapping]]] = ..., paced_cost_weight: _Optional[float] = ...) -> None: ...

class TenantId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantResponse]
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantResponse, _Mapping]]] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("query", "candidate_models", "cost_weight", "client_tags", "quality_margin", "max_cost_pct", "min_quality_pct", "session_id", "prompt_chars")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    COST_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TAGS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_PCT_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_PCT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    query: str
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    cost_weight: float
    client_tags: _containers.RepeatedScalarFieldContainer[str]
    quality_margin: float
    max_cost_pct: float
    min_quality_pct: float
    session_id: str
    prompt_chars: int
    def __init__(self, query: _Optional[str] = ..., candidate_models: _Optional[_Iterable[str]] = ..., cost_weight: _Optional[float] = ..., client_tags: _Optional[_Iterable[str]] = ..., quality_margin: _Optional[float] = ..., max_cost_pct: _Optional[float] = ..., min_quality_pct: _Optional[float] = ..., session_id: _Optional[str] = ..., prompt_chars: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("model", "estimated_cost_usd", "tags", "scores", "degraded", "degraded_reason", "input_tokens", "expected_output_tokens", "cost_weight", "weights_version", "vocabulary_version", "explanation", "unaligned_client_tags", "quality_margin", "anchor_model", "knob_source", "knob_cost_pct", "knob_quality_pct", "session_kept", "tenant", "request_id", "budget_action", "abstained")
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
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ACTION_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
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
    tenant: str
    request_id: str
    budget_action: str
    abstained: _containers.RepeatedCompositeFieldContainer[RouteAbstention]
    def __init__(self, model: _Optional[str] = ..., estimated_cost_usd: _Optional[float] = ..., tags: _Optional[_Iterable[_Union[RouteTag, _Mapping]]] = ..., scores: _Optional[_Iterable[_Union[RouteScore, _Mapping]]] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ..., input_tokens: _Optional[int] = ..., expected_output_tokens: _Optional[float] = ..., cost_weight: _Optional[float] = ..., weights_version: _Optional[str] = ..., vocabulary_version: _Optional[str] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ..., unaligned_client_tags: _Optional[_Iterable[str]] = ..., quality_margin: _Optional[float] = ..., anchor_model: _Optional[str] = ..., knob_source: _Optional[str] = ..., knob_cost_pct: _Optional[float] = ..., knob_quality_pct: _Optional[float] = ..., session_kept: _Optional[bool] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., budget_action: _Optional[str] = ..., abstained: _Optional[_Iterable[_Union[RouteAbstention, _Mapping]]] = ...) -> None: ...

class RouteAbstention(_message.Message):
    __slots__ = ("level", "top", "probability", "threshold")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    level: str
    top: str
    probability: float
    threshold: float
    def __init__(self, level: _Optional[str] = ..., top: _Optional[str] = ..., probability: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

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
