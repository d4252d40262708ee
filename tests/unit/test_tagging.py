"""Pure tagging rules: attribute tags, name normalisation, alignment."""
import numpy as np

from tagrouter.core.tagging import align, attribute_tags, normalise_client_tag, slug


def test_script_attributes_name_the_script():
    assert "attr:script-cjk" in attribute_tags("这个函数怎么写？请帮我", 12)
    assert "attr:script-cyrillic" in attribute_tags("Как написать функцию на Python?", 12)
    assert not any(t.startswith("attr:script-") for t in attribute_tags("How do I write a function?", 12))


def test_names_normalise_to_the_canonical_form():
    assert slug("ABC Sequence Puzzles & Groups") == "abc-sequence-puzzles-and-groups"
    assert slug("creative_writing") == "creative-writing"
    assert normalise_client_tag(" Task: Code Generation ") == "task:code-generation"
    assert normalise_client_tag("C++ / Rust") == "c-plus-plus-rust"


def test_align_keeps_the_nearest_tag_above_the_threshold():
    sim = np.array([[0.2, 0.7, 0.6], [0.3, 0.1, 0.2]])
    assert align(sim, 0.5) == [(1, 0.7), None]
