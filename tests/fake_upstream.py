"""The tests' local OpenAI-compatible upstream: tagrouter/stack/fake_upstream.py (the bench serves from it too)."""
from tagrouter.stack.fake_upstream import MAX_DELAY_S, FakeUpstream, answer_text, usage_of  # noqa: F401
