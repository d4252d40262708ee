"""A small OpenAI-compatible upstream LLM on loopback, for tests (no real LLM is reachable here).

`with FakeUpstream() as up:` serves POST /v1/chat/completions and /v1/completions on
`up.base_url` (http://127.0.0.1:PORT/v1), as JSON or, with `"stream": true`, as SSE chunks sent
and flushed one by one `chunk_delay_s` apart. Every answer names the model that served it
("served by MODEL") and fills `usage` (in the last chunk when `stream_options.include_usage`).
Faults for a model: `up.fail[model] = 500` answers that status with an OpenAI error body;
`up.delay[model] = seconds` waits before answering (bounded by `MAX_DELAY_S`). `up.requests`
records (path, headers, body) of every request. Only the standard library. It lives beside the
launcher because `tagrouter bench --extproc-overhead` serves from it too; tests import it from here
(or through tests/fake_upstream.py).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_DELAY_S = 30.0
MAX_BODY_BYTES = 1 << 20
CHUNKS = ("served ", "by ", "{model}")


def answer_text(model: str) -> str:
    return "".join(CHUNKS).format(model=model)


def usage_of(body: dict) -> dict:
    """Made-up but deterministic token counts: a prompt token per 4 characters, one per chunk out."""
    prompt = body.get("messages") or body.get("prompt") or ""
    prompt_tokens = max(1, len(json.dumps(prompt)) // 4)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": len(CHUNKS),
            "total_tokens": prompt_tokens + len(CHUNKS)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": []})
        else:
            self._json(404, _error("not found", "invalid_request_error"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._json(413, _error("body too large", "invalid_request_error"))
            return
        raw = self.rfile.read(length)
        path = self.path.rstrip("/")
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, _error("body is not JSON", "invalid_request_error"))
            return
        up = self.server.upstream
        up.requests.append((path, dict(self.headers), body))
        model = str(body.get("model", ""))
        delay = min(up.delay.get(model, 0.0), MAX_DELAY_S)
        if delay:
            up.closing.wait(delay)
        if model in up.fail:
            self._json(up.fail[model], _error(f"{model} failed on purpose", "server_error"))
            return
        chat = path.endswith("/chat/completions")
        if not chat and not path.endswith("/completions"):
            self._json(404, _error(f"no route {path}", "invalid_request_error"))
            return
        if body.get("stream"):
            self._stream(body, model, chat)
        else:
            self._json(200, _completion(body, model, chat))

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict, model: str, chat: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": "cmpl-fake", "created": int(time.time()), "model": model,
                "object": "chat.completion.chunk" if chat else "text_completion"}
        for i, piece in enumerate(CHUNKS):
            piece = piece.format(model=model)
            choice = {"index": 0, "delta": {"role": "assistant", "content": piece} if chat else None,
                      "text": None if chat else piece, "finish_reason": "stop" if i == len(CHUNKS) - 1 else None}
            choice = {k: v for k, v in choice.items() if v is not None or k == "finish_reason"}
            self._event({**base, "choices": [choice]})
            self.server.upstream.closing.wait(self.server.upstream.chunk_delay_s)
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": usage_of(body)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


def _completion(body: dict, model: str, chat: bool) -> dict:
    text = answer_text(model)
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {"id": "cmpl-fake", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": model, "choices": [choice], "usage": usage_of(body)}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: FakeUpstream


class FakeUpstream:
    """The fake upstream on a free loopback port, in a thread; a context manager."""

    def __init__(self, chunk_delay_s: float = 0.05):
        self.chunk_delay_s = chunk_delay_s
        self.fail: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.requests: list[tuple[str, dict, dict]] = []
        self.closing = threading.Event()  # ends delays at once when the server stops
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # `python -m tagrouter.stack.fake_upstream`: serve until Ctrl-C, for trying the gateway by hand
    with FakeUpstream() as upstream:
        print(upstream.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
