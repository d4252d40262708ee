"""OpenAI-style request bodies as the router reads them: pure functions, no I/O.

Shared by everything that routes an OpenAI request (the router's Envoy external processor, an
HTTP front door): parse a chat-completions or completions body, take the conversation to route
on, rewrite `model`, derive a session key, and write an OpenAI-style error body.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from tagrouter.core.limits import MAX_QUERY_CHARS, InvalidRequest

# Earlier turns routed with the last user message, newest first, up to this many characters:
# a follow-up ("now commit it") routes with what it follows, the last message still weighs most.
CONTEXT_CHARS = 2000
MAX_BODY_BYTES = 8 * 1024 * 1024  # a larger body is refused, not parsed
MAX_USER_IN_SESSION = 128  # a longer OpenAI `user` enters the session key as its hash


@dataclass(frozen=True)
class Conversation:
    """What a body asks: its `model`, the text to route on and the payload to rewrite."""

    payload: dict
    model: str
    last_user: str  # the last user message (completions: the last prompt)
    context: tuple[str, ...]  # earlier turns, oldest first
    first_user: str  # the first user message, for the session key
    prompt_chars: int = 0  # every message's text: what the model is sent and bills, the query a part of it

    def route_fields(self, context_chars: int = CONTEXT_CHARS) -> dict:
        """RouteRequest's `query` and, when the prompt is longer than it, `prompt_chars` to price it by."""
        query = self.query(context_chars)
        return {"query": query, **({"prompt_chars": self.prompt_chars} if self.prompt_chars > len(query) else {})}

    def query(self, context_chars: int = CONTEXT_CHARS) -> str:
        """The last user message after as much of the earlier turns (newest kept) as fits."""
        last = self.last_user.strip()[:MAX_QUERY_CHARS]  # blank padding must not push the text out
        budget = min(context_chars, MAX_QUERY_CHARS - len(last) - 2)
        kept: list[str] = []
        for turn in reversed(self.context):
            if budget <= 0:
                break
            kept.append(turn[-budget:])
            budget -= len(kept[-1]) + 1
        return "\n".join([*reversed(kept), last]) if kept else last


def _text(content, where: str) -> str:
    """A message's `content`: a string, or the text of a list of parts (images and audio skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
    raise InvalidRequest(f"{where}.content must be a string or a list of content parts")


def parse(body: bytes, completions: bool = False) -> Conversation:
    """A chat-completions body (`messages`), or with completions=True a completions body (`prompt`)."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the request body has {len(body)} bytes, at most {MAX_BODY_BYTES}")
    try:  # Python's json takes NaN, Infinity and 1e400 (inf), which an upstream's strict JSON would not
        payload = json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidRequest(f"the request body is not JSON: {err}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    _check_encodable(payload)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string")
    turns = _prompts(payload) if completions else _user_turns(payload)
    users = [i for i, (role, text) in enumerate(turns) if role == "user" and text.strip()]
    if not users:
        what = "'prompt'" if completions else "'messages' with a user message"
        raise InvalidRequest(f"nothing to route on: the body needs {what} with text")
    last = users[-1]
    return Conversation(payload, model, turns[last][1], tuple(t for _, t in turns[:last] if t.strip()),
                        turns[users[0]][1], sum(len(t) for _, t in turns))


def _not_json(name: str):
    raise InvalidRequest(f"the request body is not JSON: it holds {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"the request body holds the number {text[:40]}, beyond what JSON numbers carry (1.8e308)")
    return value


def _check_encodable(payload: dict) -> None:
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"), which no UTF-8 text can hold: the body
    could be neither routed (protobuf strings are UTF-8) nor passed on. Refused, naming where."""
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return
    except UnicodeEncodeError:
        pass

    def walk(value, where: str) -> None:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InvalidRequest(f"{where or 'the body'} holds a lone UTF-16 surrogate "
                                     f"({value[err.start]!r} at character {err.start}), which is not text") from None
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, f"{where} key" if where else "a key")
                walk(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    walk(payload, "")


def _user_turns(payload: dict) -> list[tuple[str, str]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list")
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}] must be an object with a 'role'")
        turns.append((message["role"], _text(message.get("content"), f"messages[{i}]")))
    return turns


def _prompts(payload: dict) -> list[tuple[str, str]]:
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return [("user", prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [("user", p) for p in prompt]
    raise InvalidRequest("'prompt' must be a string or a list of strings (token ids cannot be routed)")


def with_model(conversation: Conversation, model: str) -> bytes:
    """The body with `model` replaced, every other field as it was (compact JSON, UTF-8)."""
    return json.dumps({**conversation.payload, "model": model}, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def session_id(header: str | None, conversation: Conversation) -> str:
    """The session key: the `x-session-id` header, else the OpenAI `user` plus a hash of the first
    user message; empty (no session) when neither is there."""
    if header and header.strip():
        return header.strip()
    user = conversation.payload.get("user")
    if not isinstance(user, str) or not user:
        return ""
    if len(user) > MAX_USER_IN_SESSION:  # the key stays within the session id's limit
        user = hashlib.sha256(user.encode()).hexdigest()
    return f"{user}:{hashlib.sha256(conversation.first_user.encode()).hexdigest()[:16]}"


def answer_headers(route, session: bool) -> dict[str, str]:
    """The x-tagrouter-* headers of an answer routed by `route` (a RouteResponse); with a session,
    whether it kept its model."""
    headers = {"x-tagrouter-model": route.model, "x-tagrouter-estimated-cost-usd": f"{route.estimated_cost_usd:.8f}",
               "x-tagrouter-degraded": "true" if route.degraded else "false"}
    if route.degraded:
        headers["x-tagrouter-degraded-reason"] = route.degraded_reason
    if session:
        headers["x-tagrouter-session-kept"] = "true" if route.session_kept else "false"
    return headers


def error_body(message: str, error_type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> bytes:
    """An OpenAI-style error: {"error": {"message", "type", "param", "code"}}."""
    return json.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}}).encode()
