"""The tag cache changes nothing but speed: a cached answer is the one the model gives."""
from services.common.settings import TaggerSettings
from services.tagger.app import load_tagger
from services.tagger.cache import normalise

QUERIES = [
    "Write a Python function that reverses a linked list",
    "  def f(x):\n    return x;\n\n1. first\n2. second?  Why?\n",
    "\tSolve 3x + 7 = 22 (A) 5 (B) 6\n",
    "Объясни, как работает квантовая запутанность   ",
]


def test_normalised_query_gets_the_same_tags_as_the_query():
    tagger = load_tagger(TaggerSettings.from_env({}))
    raw = tagger.tag(QUERIES)
    normalised = tagger.tag([normalise(q) for q in QUERIES])
    for a, b in zip(raw, normalised):
        assert [(n, lv) for n, lv, _ in a.tags] == [(n, lv) for n, lv, _ in b.tags]
        assert a.input_tokens == b.input_tokens and a.truncated == b.truncated
