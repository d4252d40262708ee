"""How the Envoy processor reads Envoy's header maps (services/router/extproc.py)."""
from envoy.config.core.v3 import base_pb2

from services.router.extproc import endpoint, header_map


def headers(**values: bytes) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k.replace("_", "-"), raw_value=v)
                                       for k, v in values.items()])


def test_header_bytes_that_are_not_utf8_stay_apart():
    """Both were U+FFFD: two session ids that differ only in such a byte were one session."""
    a, b = header_map(headers(x_session_id=b"conv\xff")), header_map(headers(x_session_id=b"conv\xfe"))
    assert a["x-session-id"] != b["x-session-id"] and a["x-session-id"] == "conv\\xff"
    assert header_map(headers(X_Session_Id="näme".encode()))["x-session-id"] == "näme"


def test_openai_paths_are_matched_without_case_and_only_for_post():
    assert endpoint({":method": "POST", ":path": "/v1/CHAT/completions?x=1"}) == "chat"
    assert endpoint({":method": "POST", ":path": "/v1/completions/"}) == "completions"
    assert endpoint({":method": "GET", ":path": "/v1/chat/completions"}) is None
    assert endpoint({":method": "POST", ":path": "/v1/embeddings"}) is None
