"""Which selection rule the served TagRouter and `tagrouter fit --parsimony` use (docs/DESIGN-ROWS.md)."""
import pytest


def test_the_served_tagrouter_keeps_its_best_tag_set_and_fit_parsimony_asks_for_the_rule(monkeypatch):
    import argparse

    from tagrouter.cli import weights
    from tagrouter.offline import prepare
    from tagrouter.offline.routers import tag_router
    from tagrouter.offline.routers.tag_router import TagRouter

    assert TagRouter().parsimony is False  # docs/DESIGN-ROWS.md

    made = []

    class Recorded(TagRouter):
        def __init__(self, **kw):
            made.append(kw)
            raise RuntimeError("recorded")

    monkeypatch.setattr(prepare, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(tag_router, "TagRouter", Recorded)
    for flag in (True, False):
        with pytest.raises(RuntimeError, match="recorded"):
            weights._choose(None, None, argparse.Namespace(quiet=True, no_topics=True, parsimony=flag))
    assert [kw["parsimony"] for kw in made] == [True, False]
