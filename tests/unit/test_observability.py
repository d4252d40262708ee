"""The committed dashboard and rules files are what tagrouter/dev/observability.py writes."""
from tagrouter.dev import observability


def test_committed_dashboard_and_rules_are_current():
    assert observability.main(["check"]) == 0, "run `make observability`"


def test_the_dashboard_covers_what_operators_ask():
    titles = " | ".join(p.title for p in observability.PANELS).lower()
    for topic in ("route rate", "p50 and p99", "degraded share", "tag-cache", "batch size", "weights-copy age",
                  "routing share", "spend", "feedback", "errors"):
        assert topic in titles, topic
    assert {a.name for a in observability.ALERTS} == {
        "TagRouterDegradedShareHigh", "TagRouterRouteP99High", "TagRouterWeightsCopyStale",
        "TagRouterScorerRedisUnreachable", "TagRouterErrorRateHigh"}


def test_every_alert_has_a_runbook_line():
    text = (observability.REPO_ROOT / "docs" / "OPERATIONS.md").read_text()
    for alert in observability.ALERTS:
        assert f"`{alert.name}`" in text, alert.name
