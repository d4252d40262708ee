from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TagStreamRequest(_message.Message):
    __slots__ = ("id", "request", "timeout_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    request: TagRequest
    timeout_ms: int
    def __init__(self, id: _Optional[int] = ..., request: _Optional[_Union[TagRequest, _Mapping]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class TagStreamResponse(_message.Message):
    __slots__ = ("id", "response", "code", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    response: TagResponse
    code: int
    message: str
    def __init__(self, id: _Optional[int] = ..., response: _Optional[_Union[TagResponse, _Mapping]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class TagRequest(_message.Message):
    __slots__ = ("query", "tags_per_level", "client_tags")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAGS_PER_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TAGS_FIELD_NUMBER: _ClassVar[int]
    query: str
    tags_per_level: int
    client_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., tags_per_level: _Optional[int] = ..., client_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("name", "level", "score", "client_tag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    level: str
    score: float
    client_tag: str
    def __init__(self, name: _Optional[str] = ..., level: _Optional[str] = ..., score: _Optional[float] = ..., client_tag: _Optional[str] = ...) -> None: ...

class Abstention(_message.Message):
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

class TagResponse(_message.Message):
    __slots__ = ("tags", "input_tokens", "truncated", "vocabulary_version", "unaligned_client_tags", "abstained")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNALIGNED_CLIENT_TAGS_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    input_tokens: int
    truncated: bool
    vocabulary_version: str
    unaligned_client_tags: _containers.RepeatedScalarFieldContainer[str]
    abstained: _containers.RepeatedCompositeFieldContainer[Abstention]
    def __init__(self, tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., input_tokens: _Optional[int] = ..., truncated: _Optional[bool] = ..., vocabulary_version: _Optional[str] = ..., unaligned_client_tags: _Optional[_Iterable[str]] = ..., abstained: _Optional[_Iterable[_Union[Abstention, _Mapping]]] = ...) -> None: ...

class TagBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[TagRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[TagRequest, _Mapping]]] = ...) -> None: ...

class TagBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[TagResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[TagResponse, _Mapping]]] = ...) -> None: ...
