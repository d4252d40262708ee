"""TagRouter's search on the selection rows, in stages (see docs/ROUTING-CHOICES.md for what was tried).

First the rewards, prior strength and tag evidence for every topic granularity; then, at the
first stage's best of those, the level weights with every topic granularity (the full product
would multiply the grid, and `tagrouter eval`'s time, by 8); then, when the one-standard-error
rule keeps a smaller tag set than the best's, the first stage's grid again for that tag set.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from tagrouter.core.scoring import ScoringParams
from tagrouter.offline import cost_error, selection
from tagrouter.offline.prepare import Prepared
from tagrouter.offline.routers.tag_router import TagRouter, parse_setting, setting_of
from tagrouter.offline.selection import RouterResult
from tagrouter.offline.topics import TopicModel

TIE_REWARDS = (0.0, 0.15, 0.5, 1.0)
LOSS_REWARDS = (0.0, -1.0)
PRIOR_STRENGTHS = (1.0, 3.0, 10.0, 30.0, 100.0)
TAG_EVIDENCE = (0.0, 30.0)
# Level weights (domain, topic, attr; task is 1): 0 drops a level, 1 keeps it (docs/TAGS.md ablation).
LEVEL_WEIGHTS = tuple(itertools.product((0.0, 1.0), repeat=3))
LEVELS = ("level_weight_domain", "level_weight_topic", "level_weight_attr")


@dataclass
class TagRouterChoice:
    """TagRouter's settings chosen on the selection rows: topic granularities and scoring parameters."""

    topics: TopicModel | None
    params: ScoringParams
    result: RouterResult
    tags: list[list[tuple[str, float]]]  # every query's tags under the chosen topics

    @property
    def anchor(self) -> int | None:
        return self.result.anchor


def rewards_grid(granularity: tuple, **levels):
    """The first stage's settings for one topic granularity (at the given level weights)."""
    for tie, loss, k, evidence in itertools.product(TIE_REWARDS, LOSS_REWARDS, PRIOR_STRENGTHS, TAG_EVIDENCE):
        yield setting_of(granularity, ScoringParams(tie_reward=tie, loss_reward=loss, prior_strength=k,
                                                    tag_evidence=evidence, **levels))


def first_stage(granularities):
    for granularity in granularities:
        yield from rewards_grid(granularity)


def level_stage(granularities, base: dict):
    for granularity in granularities:
        for weights in LEVEL_WEIGHTS:
            yield setting_of(granularity, ScoringParams(**{**base, **dict(zip(LEVELS, weights))}))


def tag_set_size(setting: dict) -> tuple[int, int, int]:
    """How many tag sources a setting uses: (levels kept among domain, topic and attributes; topic
    granularities fitted on the suite, counted only when the topic level is kept; granularities
    fitted at all, so that a dropped topic level also fits none)."""
    levels = sum(setting.get(f"level_weight_{lv}", 1.0) > 0 for lv in ("domain", "topic", "attr"))
    fitted = len(setting.get("topics", ()))
    return levels, fitted if setting.get("level_weight_topic", 1.0) > 0 else 0, fitted


def select(router: TagRouter, prep: Prepared, folds: list[np.ndarray]) -> TagRouterChoice:
    """Fits TagRouter on train for every setting of its grid and keeps the best AUC on the
    selection rows (valid, and train out-of-fold); with the router's `parsimony`, the tag set (level
    weights and topic granularities, the second stage) is the smallest within one paired standard
    error of the best (`selection.one_se_rule` with `tag_set_size`: a level is kept only when the
    selection rows show it helps by more than their noise), and when that is a smaller set than the
    best's, the rewards, prior strength and evidence are chosen again for it (a third stage)."""
    full, folded = selection.fits(router, prep, folds)
    n_queries = len(prep.suite.queries)

    def predicted(settings):
        for setting in settings:
            yield selection.candidate(prep, setting, selection.out_of_fold(full, folded, setting, n_queries))

    rows = selection.selection_rows(prep, folds)
    first = selection.choose(prep, router, predicted(first_stage(router.granularities)), rows)
    base = {k: v for k, v in first.setting.items() if k not in ("topics", "cost_scale_usd")}
    tried_second: list = []
    second = selection.choose(prep, router, predicted(level_stage(router.granularities, base)), rows,
                              keep=tried_second)
    result = second if second.selection_auc > first.selection_auc + 1e-9 else first
    third = None
    if router.parsimony and folds:
        simpler = selection.one_se_rule(prep, router, result, tried_second, folds, tag_set_size)
        if simpler is not result:
            # the rewards, prior and evidence were chosen for the larger tag set: choose them again
            # for the one kept (the first stage's grid at its level weights and topic granularity)
            kept = simpler.setting
            grid = rewards_grid(tuple(kept["topics"]), **{k: kept[k] for k in LEVELS})
            third = selection.choose(prep, router, predicted(grid), rows)
            if third.selection_auc > simpler.selection_auc + 1e-9:
                simpler = dataclasses.replace(third, candidates=0, extra=simpler.extra)
        result = simpler
    # the cost estimate's answer length, chosen on the same rows by its error (cost_error.py)
    result = cost_error.choose_length_strength(prep, router, result, full, folded, rows)
    result = dataclasses.replace(
        result, candidates=first.candidates + second.candidates + (third.candidates if third else 0),
        extra={"alternatives": merged_alternatives(first, second),
               **{k: v for k, v in result.extra.items() if k in ("one_se_rule", "cost_estimate")}})
    granularity, params = parse_setting(result.setting)  # cost_scale_usd is a ScoringParams field too
    tags = router.suite_tags(prep)
    chosen = tags(granularity)
    return TagRouterChoice(tags.topics[granularity], params, result, chosen)


def merged_alternatives(first: RouterResult, second: RouterResult) -> dict:
    """The first two stages' alternatives: per knob value, the best selection AUC of either."""
    merged = {k: dict(v) for k, v in first.extra["alternatives"].items()}
    for key, values in second.extra["alternatives"].items():
        for value, auc in values.items():
            merged.setdefault(key, {})[value] = max(merged.get(key, {}).get(value, -1.0), auc)
    return merged
