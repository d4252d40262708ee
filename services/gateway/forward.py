"""Calls to the upstream LLMs: one pooled httpx client, errors and timeouts as OpenAI-style errors,
streams relayed chunk by chunk, and the actual cost of each answer from its `usage` in the metrics."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping

import httpx
from starlette.responses import Response, StreamingResponse

from services.common import metrics
from services.gateway.upstreams import Upstream
from tagrouter.core.openai_request import error_body

log = logging.getLogger(__name__)

MAX_ERROR_BYTES = 64 * 1024  # of an upstream's error body, kept for the message
MAX_LINE_BYTES = 1 << 20  # an SSE line longer than this is relayed but not read for `usage`


def error(status: int, message: str, kind: str, param: str | None = None, code: str | None = None,
          headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message, kind, param, code), status, headers=dict(headers or {}),
                    media_type="application/json")


def client(timeout_s: float, max_connections: int = 256) -> httpx.AsyncClient:
    """The gateway's one upstream client: kept-alive connections shared by every request."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                             limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
                             follow_redirects=False)


def record_usage(model: str, upstream: Upstream, usage) -> None:
    if not isinstance(usage, dict):
        return
    for kind in ("prompt_tokens", "completion_tokens"):
        if isinstance(usage.get(kind), int) and usage[kind] >= 0:
            metrics.GATEWAY_TOKENS.labels(model, kind.removesuffix("_tokens")).inc(usage[kind])
    cost = upstream.cost_usd(usage)
    if cost is not None:
        metrics.GATEWAY_COST.labels(model, ).inc(cost)


async def forward(http: httpx.AsyncClient, path: str, model: str, upstream: Upstream, payload: dict,
                  headers: dict[str, str], settle=None) -> Response:
    """POST the body to the model's upstream; the answer, or the upstream's failure as an OpenAI error.
    `settle` (an async callable, tenancy on) is given the answer's `usage` once it has come."""
    stream = bool(payload.get("stream"))
    body = {**payload, "model": upstream.model}
    if stream and path == "/chat/completions":  # the last chunk then carries `usage`, for the cost
        body["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
    request_headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else
                       "application/json"}
    if upstream.api_key:
        request_headers["authorization"] = f"Bearer {upstream.api_key}"
    request = http.build_request("POST", upstream.base_url + path, content=json.dumps(body).encode(),
                                 headers=request_headers)
    try:
        response = await http.send(request, stream=True)
    except httpx.TimeoutException:
        return timed_out(model, headers)
    except httpx.HTTPError as err:
        return error(502, f"the upstream of {model} is unreachable: {type(err).__name__}", "upstream_error",
                     code="upstream_unreachable", headers=headers)
    if response.status_code != 200:
        return await failed(response, model, headers)
    if stream:
        return StreamingResponse(relay(response, model, upstream, settle), media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})
    try:
        content = await response.aread()
        answer = json.loads(content)
    except httpx.TimeoutException:
        return timed_out(model, headers)
    except (httpx.HTTPError, ValueError) as err:
        return error(502, f"the upstream of {model} sent no valid JSON answer: {type(err).__name__}",
                     "upstream_error", code="upstream_bad_response", headers=headers)
    finally:
        await response.aclose()
    usage = answer.get("usage") if isinstance(answer, dict) else None
    record_usage(model, upstream, usage)
    if settle is not None:
        await settle(usage if isinstance(usage, dict) else None)
    return Response(content, 200, headers=headers, media_type="application/json")


def timed_out(model: str, headers: Mapping[str, str]) -> Response:
    return error(504, f"the upstream of {model} did not answer in time", "upstream_error",
                 code="upstream_timeout", headers=headers)


async def failed(response: httpx.Response, model: str, headers: Mapping[str, str]) -> Response:
    """An upstream's error status: 4xx passed on (the caller's request was refused), 5xx as 502."""
    try:
        raw = b""
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_ERROR_BYTES:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    try:
        upstream_error = json.loads(raw)["error"]
        message = str(upstream_error.get("message", ""))[:2000]
    except (ValueError, KeyError, TypeError, AttributeError):
        upstream_error, message = None, raw[:500].decode("utf-8", "replace")
    if response.status_code < 500:
        if isinstance(upstream_error, dict):
            return Response(json.dumps({"error": upstream_error}), response.status_code, headers=dict(headers),
                            media_type="application/json")
        return error(response.status_code, f"the upstream of {model} refused the request: {message}",
                     "invalid_request_error", headers=headers)
    log.warning("upstream of %s answered %d", model, response.status_code)
    return error(502, f"the upstream of {model} failed with HTTP {response.status_code}: {message}",
                 "upstream_error", code=f"upstream_{response.status_code}", headers=headers)


async def relay(response: httpx.Response, model: str, upstream: Upstream, settle=None) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes as they come; `usage` read on the way. A failure mid-stream (the
    status is already sent) ends the stream with an OpenAI-style error event."""
    pending, seen, settled = b"", [], settle is None
    try:
        async for chunk in response.aiter_raw():
            yield chunk
            pending = _read_usage(pending + chunk, model, upstream, seen)
        if not settled:
            await settle(seen[-1] if seen else None)
            settled = True
    except httpx.TimeoutException:
        yield b"data: " + error_body(f"the upstream of {model} stopped sending in time", "upstream_error",
                                     code="upstream_timeout") + b"\n\n"
    except httpx.HTTPError as err:
        yield b"data: " + error_body(f"the upstream of {model} broke off: {type(err).__name__}", "upstream_error",
                                     code="upstream_unreachable") + b"\n\n"
    finally:
        await response.aclose()
        if not settled:  # the caller left mid-stream (or the upstream broke off): the answer is not free
            in_background(settle(seen[-1] if seen else None))


_BACKGROUND: set[asyncio.Task] = set()


def in_background(work) -> None:
    """Runs `work` (a coroutine) as its own task: a stream's cancelled scope would cancel an await."""
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_BACKGROUND.discard)


def _read_usage(buffer: bytes, model: str, upstream: Upstream, seen: list | None = None) -> bytes:
    """Records `usage` from the complete lines of `buffer`; returns the incomplete rest."""
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        if line.startswith(b"data: {") and b'"usage"' in line:
            try:
                usage = json.loads(line[6:]).get("usage")
                record_usage(model, upstream, usage)
                if seen is not None and isinstance(usage, dict):
                    seen.append(usage)
            except (ValueError, AttributeError):
                pass
    return rest if len(rest) <= MAX_LINE_BYTES else b""
