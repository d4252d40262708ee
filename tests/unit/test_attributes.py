"""The served-time attribute rules (tagrouter/core/attributes.py): each fires on its case and not on plain text."""
import json
from pathlib import Path

import pytest

from tagrouter.core.attributes import ATTRIBUTE_TAGS, CANDIDATE_ATTRIBUTES, attribute_tags

PLAIN = "Tell me about the history of the city where I grew up"


@pytest.mark.parametrize("text, tokens, tag", [
    ("Write a python function that returns the largest item of a list.", 14, "attr:code-python"),
    ("SELECT name FROM users WHERE age > 30 -- why is this slow?", 16, "attr:code-sql"),
    ("How do I fix this in C++? std::vector<int> v;", 16, "attr:code-c-family"),
    ("Solve for x: 3x + 2 = 11", 10, "attr:equation"),
    ("In 2019 they sold 120 units, in 2020 they sold 150 and in 2021 they sold 90.", 30, "attr:contains-numbers"),
    ("What is a monad? And why do people find it hard?", 12, "attr:several-questions"),
    ("Return the result as JSON with keys name and age.", 12, "attr:format-json"),
    ("Compare the three phones in a table.", 9, "attr:format-table"),
    ("Give me a bulleted list of packing items.", 9, "attr:format-list"),
    ("Summarise this article in 50 words.", 8, "attr:word-limit"),
    ("Think step by step: how many legs do 3 spiders have?", 14, "attr:reasoning-cue"),
    ("User: hi there\nAssistant: Hello! How can I help?\nUser: book a table", 20, "attr:multi-turn"),
    ("¿Cuál es la mejor manera de aprender los verbos en español para una persona que no habla?", 25,
     "attr:latin-non-english"),
    ("hello " * 80, 80, "attr:medium-input"),
    ("hello " * 1100, 1100, "attr:very-long-input"),
])
def test_each_rule_fires_on_its_case_and_not_on_plain_text(text, tokens, tag):
    assert tag in attribute_tags(text, tokens, CANDIDATE_ATTRIBUTES)
    assert tag not in attribute_tags(PLAIN, 12, CANDIDATE_ATTRIBUTES)


def test_the_served_attributes_are_candidates_in_order():
    assert set(ATTRIBUTE_TAGS) <= set(CANDIDATE_ATTRIBUTES)
    assert attribute_tags("Solve for x: 3x + 2 = 11", 10) == [
        t for t in attribute_tags("Solve for x: 3x + 2 = 11", 10, CANDIDATE_ATTRIBUTES) if t in ATTRIBUTE_TAGS]


def test_the_served_attributes_are_those_the_ablation_kept():
    kept = json.loads((Path(__file__).parents[2] / "docs" / "ATTRIBUTES.json").read_text())["kept"]
    assert list(ATTRIBUTE_TAGS) == kept
