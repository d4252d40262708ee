"""OpenAI request bodies as the router reads them (tagrouter/core/openai_request.py)."""
from __future__ import annotations

import json

import pytest

from tagrouter.core import openai_request as oa
from tagrouter.core.limits import MAX_QUERY_CHARS, InvalidRequest


def chat(*turns, **extra) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": r, "content": c} for r, c in turns], **extra}).encode()


def test_the_last_user_message_routes_with_the_earlier_turns_before_it():
    conv = oa.parse(chat(("system", "Be terse."), ("user", "Write a Rust parser for TOML"),
                         ("assistant", "Here it is ..."), ("user", "now commit it")))
    assert conv.model == "auto" and conv.last_user == "now commit it" and conv.first_user.startswith("Write a Rust")
    assert conv.context == ("Be terse.", "Write a Rust parser for TOML", "Here it is ...")
    assert conv.query() == "Be terse.\nWrite a Rust parser for TOML\nHere it is ...\nnow commit it"
    # the newest context is kept first (an older turn by its end); the last message always whole
    assert conv.query(context_chars=20) == " TOML\nHere it is ...\nnow commit it"
    assert conv.query(context_chars=0) == "now commit it"


def test_content_parts_and_completions_prompts():
    parts = [{"type": "text", "text": "What is in"}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "this picture?"}]
    assert oa.parse(chat(("user", parts))).last_user == "What is in\nthis picture?"
    conv = oa.parse(b'{"model": "auto", "prompt": ["one", "two"]}', completions=True)
    assert conv.last_user == "two" and conv.context == ("one",)


def test_a_long_message_is_cut_to_the_query_limit():
    conv = oa.parse(chat(("user", "earlier"), ("user", "x" * (MAX_QUERY_CHARS + 10))))
    assert len(conv.query()) == MAX_QUERY_CHARS


@pytest.mark.parametrize("body, completions, says", [
    (b"\xff\xfe", False, "not JSON"),
    (b"[1, 2]", False, "must be a JSON object"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', False, "'model' is required"),
    (b'{"model": "", "messages": []}', False, "'model' is required"),
    (b'{"model": "auto", "messages": "hi"}', False, "'messages' must be a non-empty list"),
    (b'{"model": "auto", "messages": [{"content": "hi"}]}', False, "messages[0] must be an object with a 'role'"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": 3}]}', False, "messages[0].content"),
    (b'{"model": "auto", "messages": [{"role": "system", "content": "only a system prompt"}]}', False,
     "nothing to route on"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "   "}]}', False, "nothing to route on"),
    (b'{"model": "auto", "prompt": [[1, 2]]}', True, "token ids cannot be routed"),
    (b'{"model": "auto"}', True, "'prompt' must be"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800 hi"}]}', False,
     "messages[0].content holds a lone UTF-16 surrogate"),
    (b'{"model": "auto", "prompt": ["ok", "\\udfff"]}', True, "prompt[1] holds a lone UTF-16 surrogate"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "\\ud800": 1}', False,
     "a key holds a lone UTF-16 surrogate"),
    # Python's json reads these; an upstream's strict parser would not, had they been passed on
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}', False, "it holds NaN"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}', False,
     "the number 1e400, beyond"),
])
def test_bad_bodies_are_named(body, completions, says):
    with pytest.raises(InvalidRequest, match=says.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        oa.parse(body, completions=completions)


def test_a_body_past_the_limit_is_refused_unparsed():
    with pytest.raises(InvalidRequest, match="at most"):
        oa.parse(b" " * (oa.MAX_BODY_BYTES + 1))


def test_with_model_changes_only_the_model():
    sent = {"model": "auto", "temperature": 0.3, "messages": [{"role": "user", "content": "héllo"}], "stream": True}
    out = oa.with_model(oa.parse(json.dumps(sent).encode()), "claude-2")
    assert json.loads(out) == {**sent, "model": "claude-2"} and "héllo".encode() in out


def test_session_id_from_the_header_else_user_and_first_message():
    conv = oa.parse(chat(("user", "first question"), ("assistant", "a"), ("user", "second"), user="alice"))
    again = oa.parse(chat(("user", "first question"), ("assistant", "b"), ("user", "third"), user="alice"))
    assert oa.session_id(" s-1 ", conv) == "s-1"
    assert oa.session_id(None, conv) == oa.session_id("", again) and oa.session_id(None, conv).startswith("alice:")
    assert oa.session_id(None, oa.parse(chat(("user", "first question")))) == ""  # no user, no header: no session


def test_error_body_is_openai_shaped():
    assert json.loads(oa.error_body("bad", param="model")) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "model", "code": None}}


def test_answer_headers():
    from tagrouter.router.v1 import router_pb2

    plain = router_pb2.RouteResponse(model="m", estimated_cost_usd=0.00012)
    assert oa.answer_headers(plain, session=False) == {
        "x-tagrouter-model": "m", "x-tagrouter-estimated-cost-usd": "0.00012000", "x-tagrouter-degraded": "false"}
    degraded = router_pb2.RouteResponse(model="m", degraded=True, degraded_reason="tagger unavailable (UNAVAILABLE)",
                                        session_kept=True)
    got = oa.answer_headers(degraded, session=True)
    assert got["x-tagrouter-degraded-reason"].startswith("tagger") and got["x-tagrouter-session-kept"] == "true"


def test_a_prompt_longer_than_the_query_is_priced_by_its_characters():
    system = "You are a careful reviewer. " * 200  # 5,600 characters the model is sent and bills
    conv = oa.parse(chat(("system", system), ("user", "Review this diff")))
    assert conv.prompt_chars == len(system) + len("Review this diff")
    fields = conv.route_fields()
    assert len(fields["query"]) < conv.prompt_chars and fields["prompt_chars"] == conv.prompt_chars
    assert oa.parse(chat(("user", "hi"))).route_fields() == {"query": "hi"}  # the query is the whole prompt


def test_prompt_tokens_scale_the_query_count_to_the_prompt():
    from tagrouter.core.decision import prompt_tokens
    from tagrouter.core.limits import check_prompt_chars

    assert prompt_tokens(10, 40, None) == prompt_tokens(10, 40, 40) == prompt_tokens(10, 40, 30) == 10
    assert prompt_tokens(10, 40, 400) == 100 and prompt_tokens(10, 40, 41) == 11  # rounded up
    # "hi" is [CLS] hi [SEP]: the prompt's other 398 characters at one token per 2, not 3 per 2
    assert prompt_tokens(3, 2, 400, fixed_tokens=2) == 3 + 199
    check_prompt_chars(None, "abc")
    check_prompt_chars(3, "abc")
    with pytest.raises(InvalidRequest, match="prompt_chars is 2: it counts the whole prompt, the query's 3"):
        check_prompt_chars(2, "abc")


def test_a_surrogate_pair_is_text_and_blank_padding_is_not_the_query():
    emoji = oa.parse(b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud83d\\ude00 ok"}]}')
    assert emoji.last_user == "\U0001F600 ok"
    padded = oa.parse(json.dumps({"model": "auto", "messages": [{"role": "user",
                                                                  "content": " " * 200_000 + "What is 2+2?"}]}).encode())
    assert padded.query() == "What is 2+2?"


def test_a_long_user_enters_the_session_key_as_its_hash():
    body = json.dumps({"model": "auto", "user": "u" * 240, "messages": [{"role": "user", "content": "hi"}]}).encode()
    key = oa.session_id(None, oa.parse(body))
    assert len(key) <= 100 and key == oa.session_id(None, oa.parse(body))
