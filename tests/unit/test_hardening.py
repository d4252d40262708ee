"""Regression tests for issue 13's findings that need no server: limits, pricing, settings, batching."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from services.common import metrics
from services.common.security import AdminTokenInterceptor
from services.common.settings import ConfigError, ServerSettings, is_loopback
from services.tagger.batching import MicroBatcher
from tagrouter.core import limits
from tagrouter.core.limits import InvalidRequest

# --- finding 14: invisible queries, the bearer scheme -----------------------------------------

@pytest.mark.parametrize("query", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff" * 50, " \u200b \u00a0\t", "\u0301\u0302"])
def test_a_query_with_no_visible_character_is_refused(query):
    with pytest.raises(InvalidRequest, match="no visible character"):
        limits.check_query(query)
    with pytest.raises(InvalidRequest, match="no visible character"):
        limits.check_client_tags([query])


@pytest.mark.parametrize("query", ["x\u200b", "\u200bhello", "日本語", "😀", "é"])
def test_a_query_with_a_visible_character_is_accepted(query):
    limits.check_query(query)


@pytest.mark.parametrize("value, ok", [("Bearer tok", True), ("bearer tok", True), ("BEARER tok", True),
                                       ("Bearer  tok ", True), ("Bearer TOK", False), ("Basic tok", False),
                                       ("tok", False), ("Bearertok", False), ("", False)])
def test_the_bearer_scheme_is_case_insensitive_and_the_token_exact(value, ok):
    assert AdminTokenInterceptor("tok")._authorised((("authorization", value),)) is ok


# --- findings 5, 6: candidates, characters per request and per batch --------------------------

def test_candidates_are_deduplicated_then_capped():
    assert limits.check_candidates(["a", "b", "a"] * 30_000) == ["a", "b"]  # 60k duplicates: two models
    with pytest.raises(InvalidRequest, match=f"at most {limits.MAX_CANDIDATES}"):
        limits.check_candidates([f"m{i}" for i in range(limits.MAX_CANDIDATES + 1)])


def _request(query: str, tags=()):
    return SimpleNamespace(query=query, client_tags=list(tags))


def test_characters_per_batch_are_bounded():
    """Finding 6: 150 x 100k characters is refused at once; the same queries in small batches are fine."""
    big = "word " * (limits.MAX_QUERY_CHARS // 5)
    with pytest.raises(InvalidRequest, match=f"more than {limits.MAX_BATCH_CHARS} characters"):
        limits.check_batch([_request(big)] * 150)
    limits.check_batch([_request(big)] * (limits.MAX_BATCH_CHARS // limits.MAX_QUERY_CHARS))
    with pytest.raises(InvalidRequest, match="client tags"):  # client tags count too
        limits.check_batch([_request(big), _request(big, ["t" * 200])])
    with pytest.raises(InvalidRequest, match=f"at most {limits.MAX_BATCH_REQUESTS}"):
        limits.check_batch([_request("q")] * (limits.MAX_BATCH_REQUESTS + 1))


def test_characters_per_request_count_the_client_tags():
    limits.check_request_chars("q" * limits.MAX_QUERY_CHARS, [])
    with pytest.raises(InvalidRequest, match=f"at most {limits.MAX_REQUEST_CHARS}"):
        limits.check_request_chars("q" * (limits.MAX_QUERY_CHARS - 10), ["t" * 200])


# --- finding 11: an idle batcher admits every legal request -----------------------------------

def test_an_idle_batcher_admits_a_submission_larger_than_its_queue_limit():
    """17 queries x 16 client tags = 272 alignments against a queue limit of 256, on an idle
    tagger: admitted whole; a second submission while the queue is full is refused."""
    def run_batch(texts):
        return [t.upper() for t in texts]

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=32, max_queue=256)
        batcher.start()
        try:
            texts = [f"tag {i}" for i in range(17 * 16)]
            assert await batcher.submit_many(texts) == [t.upper() for t in texts]
            # while 300 wait (the worker has not run yet), the next submission is refused
            first = asyncio.ensure_future(batcher.submit_many([f"x{i}" for i in range(300)]))
            await asyncio.sleep(0)
            with pytest.raises(Exception, match="tagger overloaded"):
                await batcher.submit("one more")
            assert len(await first) == 300
        finally:
            await batcher.close()

    asyncio.run(main())


# --- finding 10: [UNK] runs are priced by their length ----------------------------------------

@pytest.fixture(scope="module")
def encoder():
    from services.common.settings import DEFAULT_MODEL_DIR
    from tagrouter.core.encoder import Encoder

    if not (DEFAULT_MODEL_DIR / "model.onnx").is_file():
        pytest.skip("no exported model: run `make model`")
    return Encoder(DEFAULT_MODEL_DIR)


@pytest.mark.parametrize("text, at_least", [("a" * 100_000, 25_000), ("😀" * 1_000, 1_000),
                                            ("x" + "a" * 500 + " y", 125)])
def test_unknown_words_are_priced_by_their_length(encoder, text, at_least):
    assert encoder.count_tokens(text) >= at_least
    assert encoder.encode([text]).token_counts[0] == encoder.count_tokens(text)


def test_ordinary_text_is_counted_as_the_tokenizer_counts(encoder):
    text = "Write a Python function that reverses a linked list"
    assert encoder.count_tokens(text) == len(encoder.tokenizer.encode(text).ids)


# --- finding 7: metrics bind where the gRPC port does ----------------------------------------

def test_metrics_bind_to_the_service_host_by_default(monkeypatch):
    assert ServerSettings.from_env("router", {}).metrics_host == "127.0.0.1"
    assert ServerSettings.from_env("router", {"TAGROUTER_HOST": "10.1.2.3"}).metrics_host == "10.1.2.3"
    assert ServerSettings.from_env("router", {"TAGROUTER_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    bound = []
    monkeypatch.setattr(metrics, "start_http_server", lambda port, addr: bound.append(addr))
    monkeypatch.setattr(metrics, "_started_ports", set())
    metrics.serve_metrics(1, "[::]")
    metrics.serve_metrics(2)
    assert bound == ["::", "127.0.0.1"]


# --- finding 8: no open admin RPCs on a reachable address by accident -------------------------

def test_a_scorer_on_a_non_loopback_address_needs_a_token_or_an_explicit_opt_out():
    for host in ("[::]", "0.0.0.0", "10.0.0.7"):
        with pytest.raises(ConfigError, match="TAGROUTER_ADMIN_TOKEN is not set"):
            ServerSettings.from_env("scorer", {"TAGROUTER_HOST": host})
        ServerSettings.from_env("scorer", {"TAGROUTER_HOST": host, "TAGROUTER_ADMIN_TOKEN": "t"})
        ServerSettings.from_env("scorer", {"TAGROUTER_HOST": host, "TAGROUTER_ALLOW_OPEN_ADMIN": "true"})
        ServerSettings.from_env("router", {"TAGROUTER_HOST": host})  # no admin RPCs there
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        ServerSettings.from_env("scorer", {"TAGROUTER_HOST": host})


@pytest.mark.parametrize("name", ["TAGROUTER_MAX_STREAMS", "TAGROUTER_MAX_STREAMS_PER_PEER",
                                  "TAGROUTER_MAX_ADMIN_RPCS", "TAGROUTER_MAX_CONCURRENT_RPCS"])
def test_admission_limits_are_positive_integers(name):
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match=name):
            ServerSettings.from_env("router", {name: bad})
