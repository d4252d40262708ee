"""TagRouter's search on the selection rows, in stages (see docs/ROUTING-CHOICES.md for what was tried).

First the rewards, prior strength and tag evidence for every topic granularity; then, at the
first stage's best of those, the level weights with every topic granularity (the full product
would multiply the grid, and `tagrouter eval`'s time, by 8); then, only with `parsimony` (off
where served) and when the one-standard-error rule keeps a smaller tag set than the best's, the
first stage's grid again for that tag set.
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
# The caution stage's grid: the first stage's prior strengths and two stronger ones (toward each
# model's overall rate, which routes like mixing the single models), with and without tag evidence.
CAUTION_PRIOR_STRENGTHS = (*PRIOR_STRENGTHS, 300.0, 1000.0)
# The neighbour blend's grid (`TagRouter(neighbours=True)`): neighbours k and the neighbours' weight.
NEIGHBOURS = (10, 30, 100)
NEIGHBOUR_WEIGHTS = (0.0, 0.25, 0.5, 0.75)


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


def caution_stage(base: dict):
    """The chosen setting at every prior strength and tag evidence of the caution grid."""
    granularity, params = parse_setting(base)
    for k, evidence in itertools.product(CAUTION_PRIOR_STRENGTHS, TAG_EVIDENCE):
        yield setting_of(granularity, dataclasses.replace(params, prior_strength=k, tag_evidence=evidence,
                                                          cost_scale_usd=0.0))


def neighbour_stage(base: dict):
    """The chosen setting alone and blended with every neighbours k and weight of the grid."""
    yield {**base, "cost_scale_usd": 0.0, "neighbours": 0, "neighbour_weight": 0.0}
    for k, w in itertools.product(NEIGHBOURS, [w for w in NEIGHBOUR_WEIGHTS if w > 0]):
        yield {**base, "cost_scale_usd": 0.0, "neighbours": k, "neighbour_weight": w}


def neighbour_share(setting: dict) -> tuple[float, int]:
    """The blend's complexity for the one-standard-error rule: tags alone first."""
    return setting.get("neighbour_weight", 0.0), setting.get("neighbours", 0)


def boldness(setting: dict) -> tuple[float, float]:
    """How far a setting lets the counts move scores from each model's overall rate (smaller is
    simpler for the one-standard-error rule): less prior strength, then less tag evidence."""
    return -setting["prior_strength"], -setting["tag_evidence"]


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
    if router.caution and folds:
        # small data: the most shrinkage toward the overall rates the selection rows cannot tell
        # from the best (the rows' noise grows as the data shrink, so the rule grows more cautious)
        tried_caution: list = []
        caution = selection.choose(prep, router, predicted(caution_stage(result.setting)), rows, keep=tried_caution)
        # at the best's form of the cost rule: the rule's form is not a matter of caution
        same_rule = [t for t in tried_caution if (t[0]["cost_scale_usd"] > 0) == (caution.setting["cost_scale_usd"] > 0)]
        cautious = selection.one_se_rule(prep, router, caution, same_rule, folds, boldness)
        if cautious is not caution:
            result = dataclasses.replace(cautious, extra={**result.extra,
                                                          "caution_rule": cautious.extra["one_se_rule"]})
        elif caution.selection_auc > result.selection_auc + 1e-9:  # a stronger prior was simply better
            result = dataclasses.replace(caution, extra=result.extra)
    if router.neighbours:
        # tags and neighbours: the blend is kept only when the selection rows show it helps by more
        # than their noise (the one-standard-error rule toward tags alone)
        tried_blend: list = []
        blend = selection.choose(prep, router, predicted(neighbour_stage(result.setting)), rows, keep=tried_blend)
        blend = selection.one_se_rule(prep, router, blend, tried_blend, folds, neighbour_share) if folds else blend
        if blend.setting.get("neighbour_weight", 0.0) > 0:
            result = dataclasses.replace(blend, extra={**result.extra, "neighbour_blend": blend.setting})
    # the cost estimate's answer length, chosen on the same rows by its error (cost_error.py)
    result = cost_error.choose_length_strength(prep, router, result, full, folded, rows)
    result = dataclasses.replace(
        result, candidates=first.candidates + second.candidates + (third.candidates if third else 0),
        extra={"alternatives": merged_alternatives(first, second),
               **{k: v for k, v in result.extra.items() if k in KEPT_EXTRA}})
    granularity, params = parse_setting(result.setting)  # cost_scale_usd is a ScoringParams field too
    tags = router.suite_tags(prep)
    chosen = tags(granularity)
    return TagRouterChoice(tags.topics[granularity], params, result, chosen)


KEPT_EXTRA = ("one_se_rule", "caution_rule", "neighbour_blend", "cost_estimate")  # what RESULT.json reports


def merged_alternatives(first: RouterResult, second: RouterResult) -> dict:
    """The first two stages' alternatives: per knob value, the best selection AUC of either."""
    merged = {k: dict(v) for k, v in first.extra["alternatives"].items()}
    for key, values in second.extra["alternatives"].items():
        for value, auc in values.items():
            merged.setdefault(key, {})[value] = max(merged.get(key, {}).get(value, -1.0), auc)
    return merged
