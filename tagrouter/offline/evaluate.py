"""`tagrouter eval`: fit every router on `train`, choose its settings on `valid`, report on `test`.

Every router (TagRouter and the baselines) predicts a score per (query, model); the same
decision rule (services/router/decision.py) turns scores and estimated costs into a choice,
and the same knob sweep (`LAMBDAS`) traces its curve. TagRouter's scores come from the
scorer's own pure functions (services/scorer/scoring.py) over counts made by tagrouter/fit.py,
so the numbers here are what the services compute. The encoder runs once per suite: its
embeddings feed the tagger's tags, the suite-fitted topic tags and every baseline.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tagrouter.core import decision
from tagrouter.core import scoring
from tagrouter.core.scoring import ScoringParams
from tagrouter.offline import baselines, headroom, quality_metrics as metrics
from tagrouter.offline.fit import count_matrix, incidence, tag_index
from tagrouter.offline.suite import Suite
from tagrouter.offline.topics import TopicModel, fit_topics

# The cost knob sweep shared by every router: 0 (best expected quality) up to "always cheapest".
LAMBDAS = np.concatenate([[0.0], np.logspace(-4, 2, 121)])
# Plus, per router and rows, knob values at quantiles of the queries' first switch points (the lambda at
# which a query leaves its lambda = 0 choice for a cheaper model): a fixed log grid steps over whole
# groups of queries where a router's score gaps are concentrated, near cost 100% above all.
SWITCH_QUANTILES = 64
# The quality margin (decision.py) only changes a query's choice at lambda = 0 when it passes the
# query's margin switch point, so its path is values just past quantiles of those points and past the
# largest (always the anchor): none where the plain argmax already picks the anchor for every query.
BASELINES = ("knn", "mf", "forc")

# TagRouter's search space on `valid` (see docs/ROUTING-CHOICES.md for what was tried).
TIE_REWARDS = (0.0, 0.15, 0.5, 1.0)
LOSS_REWARDS = (0.0, -1.0)
PRIOR_STRENGTHS = (1.0, 3.0, 10.0, 30.0, 100.0)
TAG_EVIDENCE = (0.0, 30.0)
TOPIC_GRANULARITIES = ((), (4, 16, 64), (4, 8, 16, 32, 64, 128))
# Level weights (domain, topic, attr; task is 1): 0 drops a level, 1 keeps it (docs/TAGS.md ablation).
# Searched in a second stage, at the first stage's best rewards, prior and evidence, with every
# topic granularity: the full product would multiply the grid (and `tagrouter eval`'s time) by 8.
LEVEL_WEIGHTS = tuple(itertools.product((0.0, 1.0), repeat=3))
# Settings are chosen on valid plus train predicted out-of-fold: valid alone (81 queries on the
# AlpacaEval suites) picks noise among hundreds of settings. Every router gets the same folds.
CV_FOLDS = 5


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (a no-op object when disabled or tqdm is missing)."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
        except ImportError:
            pass

    class _Null:
        def update(self, n=1):
            pass

        def close(self):
            pass

    return _Null()


@dataclass
class Prepared:
    """A suite with its embeddings and tagger tags, computed once."""

    suite: Suite
    embeddings: np.ndarray  # [Q, d] unit rows
    base_tags: list[list[tuple[str, float]]]  # tagger tags (name, confidence) per query
    accept: np.ndarray  # [Q, M] bool
    outcomes: np.ndarray  # [Q, M, 3]
    vocabulary_version: str
    seconds_embedding: float = 0.0


def prepare(suite: Suite, tagger, show_progress: bool = True) -> Prepared:
    """Embeds every query once and tags it with the tagger's own selection rule."""
    start = time.perf_counter()
    if tagger.vocabulary.groups:  # topics are fitted per suite here: start from the hand taxonomy
        from tagrouter.core.tag_model import TagModel

        tagger = TagModel(tagger.encoder, tagger.vocabulary.without_groups(), tagger.per_level, tagger.min_score,
                        topic_min_score=tagger.topic_min_score)
    bar = _progress(len(suite.queries), "embedding queries", show_progress)
    embeddings = tagger.encoder.embed(suite.queries, progress=bar.update)
    bar.close()
    counts = [len(e.ids) for e in tagger.encoder.tokenizer.encode_batch(suite.queries)]
    tagged = tagger.tag_encoded(suite.queries, embeddings, counts)
    base_tags = [[(name, float(score)) for name, _, score in t.tags] for t in tagged]
    return Prepared(suite, embeddings, base_tags, metrics.accepted(suite.scores, suite.tie_margin),
                    scoring.pairwise_outcomes(suite.scores, suite.tie_margin), tagger.vocabulary.version,
                    time.perf_counter() - start)


# --- the knob sweep ------------------------------------------------------------------------
def switch_points(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0) -> np.ndarray:
    """[Q] the smallest knob at which each query leaves its lambda = 0 choice for a cheaper model
    (inf where no cheaper model exists): from predictions and estimated costs only."""
    first = decision.choose(scores, costs, 0.0, cost_scale_usd)
    rows = np.arange(len(first))
    scale = cost_scale_usd if cost_scale_usd > 0 else costs.max(axis=1, keepdims=True)
    saved = (costs[rows, first][:, None] - costs) / np.where(np.asarray(scale) > 0, scale, 1.0)  # [Q, M]
    gap = scores[rows, first][:, None] - scores
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.where(saved > 0, gap / np.where(saved > 0, saved, 1.0), np.inf)
    return np.maximum(at, 0.0).min(axis=1)


def _past_quantiles(points: np.ndarray, quantiles: int) -> np.ndarray:
    points = points[np.isfinite(points)]
    if not len(points) or quantiles <= 0:
        return np.zeros(0)
    return np.quantile(points, (np.arange(quantiles) + 0.5) / quantiles) * (1 + 1e-9) + 1e-12


def knob_values(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0,
                quantiles: int = SWITCH_QUANTILES) -> np.ndarray:
    """LAMBDAS plus knob values just past quantiles of the queries' first switch points."""
    extra = _past_quantiles(switch_points(scores, costs, cost_scale_usd), quantiles)
    return np.unique(np.concatenate([LAMBDAS, extra])) if len(extra) else LAMBDAS


def margin_switch_points(scores: np.ndarray, costs: np.ndarray, anchor: int,
                         cost_scale_usd: float = 0.0) -> np.ndarray:
    """[Q] the quality margin at which each query leaves its lambda = 0 choice for the anchor
    (S(choice) - S(anchor); inf where the choice is the anchor already): predictions only."""
    first = decision.choose(scores, costs, 0.0, cost_scale_usd)
    gap = scores[np.arange(len(first)), first] - scores[:, anchor]
    return np.where(first == anchor, np.inf, np.maximum(gap, 0.0))


def knob_path(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0, anchor: int | None = None,
              quantiles: int = SWITCH_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    """(quality margins [K], lambdas [K]): the decision rule's one path, from "always the anchor"
    to "always the cheapest". The margin takes values just past quantiles of the queries' margin
    switch points at lambda = 0 and just past the largest, then lambda sweeps `knob_values` at
    margin 0. Without an anchor, the lambda part alone."""
    lambdas = knob_values(scores, costs, cost_scale_usd, quantiles)
    if anchor is None:
        return np.zeros_like(lambdas), lambdas
    points = margin_switch_points(scores, costs, anchor, cost_scale_usd)
    points = points[np.isfinite(points)]
    if not len(points):
        return np.zeros_like(lambdas), lambdas
    margins = np.unique(np.concatenate([_past_quantiles(points, quantiles), [points.max() * (1 + 1e-9) + 1e-12]]))
    return (np.concatenate([margins, np.zeros_like(lambdas)]),
            np.concatenate([np.zeros_like(margins), lambdas]))


def choices_along(scores: np.ndarray, costs: np.ndarray, cost_weights: np.ndarray,
                  cost_scale_usd: float = 0.0) -> np.ndarray:
    """[K, Q] `decision.choose(scores, costs, w, cost_scale_usd)` for every w >= 0 of `cost_weights`
    [K], without the [K, Q, M] utilities (most of `tagrouter eval`'s time on an 11-model suite).

    The rule picks, among the models whose utility S - w * cost / scale is within TIED_UTILITY of
    the best, the cheapest. Model m is within it of every other line exactly on a band of w: from
    lo(m) (where the pricier lines stop beating it by more) to hi(m) (where a cheaper one starts
    to). The cheapest model whose band has started is always inside its band (a cheaper line that
    beat it by more would have a band started too), so the choice at w is the cheapest model with
    lo(m) <= w: a running minimum over the bands' starts. O(Q M^2 + K Q) instead of O(K Q M)."""
    scores = np.asarray(scores, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    weights = np.asarray(cost_weights, dtype=np.float64)
    if np.any(weights < 0) or np.any(np.isnan(weights)):
        raise ValueError("cost weights must be >= 0")
    if not np.isfinite(scores).all():  # the bands need finite differences: the rule itself then
        return decision.choose(scores, costs, weights[:, None, None], cost_scale_usd).reshape(len(weights), -1)
    n_queries, n_models = scores.shape
    if cost_scale_usd > 0:
        unit = costs / cost_scale_usd
    else:
        top = costs.max(axis=1, keepdims=True)
        unit = np.divide(costs, top, out=np.zeros_like(costs), where=top > 0)
    tied = decision.TIED_UTILITY
    above = scores[:, :, None] - scores[:, None, :]  # [Q, j, m] S(j) - S(m)
    steeper = unit[:, :, None] - unit[:, None, :]  # [Q, j, m] unit(j) - unit(m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        meet = (above - tied) / steeper  # the w from which m is within `tied` of j (j pricier), until which (j cheaper)
    lo = np.where(steeper > 0, meet, -np.inf).max(axis=1)
    hi = np.where(steeper < 0, meet, np.inf).min(axis=1)
    ever = np.where(steeper == 0, above <= tied, True).all(axis=1) & (lo <= hi)
    lo = np.where(ever, np.maximum(lo, 0.0), np.inf)  # [Q, M]
    # rank of each model by (cost, index): the rule's tie-break
    rank = np.lexsort((np.broadcast_to(np.arange(n_models), costs.shape), costs), axis=1).argsort(axis=1)
    by_start = np.argsort(lo, axis=1, kind="stable")
    best_rank = np.minimum.accumulate(np.take_along_axis(rank, by_start, axis=1), axis=1)
    path = np.take_along_axis(np.argsort(rank, axis=1), best_rank, axis=1)  # [Q, M] choice once j+1 bands started
    starts = np.take_along_axis(lo, by_start, axis=1)  # [Q, M] ascending
    order = np.argsort(weights, kind="stable")
    started = np.zeros((len(weights) + 1, n_queries), dtype=np.int64)
    rows = np.broadcast_to(np.arange(n_queries)[:, None], starts.shape)
    np.add.at(started, (np.searchsorted(weights[order], starts, side="left"), rows), 1)
    count = np.cumsum(started, axis=0)[:-1]  # [K, Q] bands started at each sorted weight (>= 1: the argmax's)
    out = np.empty((len(weights), n_queries), dtype=np.int64)
    out[order] = np.take_along_axis(path.T, np.maximum(count - 1, 0), axis=0)
    return out


def sweep(prep: Prepared, rows: np.ndarray, predicted: np.ndarray, estimated_costs: np.ndarray,
          cost_scale_usd: float = 0.0, lambdas: np.ndarray | None = None, anchor: int | None = None) -> np.ndarray:
    """[K, 3] (true total cost, AR, quality) of the decision rule at each knob setting, on `rows`
    (by default the rows' own `knob_path`: the quality margin toward `anchor` when one is given,
    then lambda; with `lambdas`, those lambdas at margin 0)."""
    s, c = predicted[rows], estimated_costs[rows]
    if lambdas is None:
        margins, lambdas = knob_path(s, c, cost_scale_usd, anchor)
    else:
        lambdas = np.asarray(lambdas, dtype=np.float64)
        margins = np.zeros_like(lambdas)
    choices = np.empty((len(lambdas), len(s)), dtype=np.int64)  # [K, Q]
    on_margin = margins != 0  # the quality margin's part of the path (few values): the rule itself
    if on_margin.any():
        choices[on_margin] = decision.choose(s, c, lambdas[on_margin, None, None], cost_scale_usd,
                                             margins[on_margin, None, None], anchor)
    if (~on_margin).any():
        choices[~on_margin] = choices_along(s, c, lambdas[~on_margin], cost_scale_usd)
    suite = prep.suite
    return metrics.routed_points(choices, prep.accept[rows], suite.scores[rows], suite.costs[rows])


def list_prices(suite: Suite) -> np.ndarray:
    """[M] input + output list price per million tokens: the anchor's tie-break (decision.anchor)."""
    return np.array([m.input_usd_per_mtok + m.output_usd_per_mtok for m in suite.models])


def baseline_anchor(suite: Suite, predicted: np.ndarray) -> int:
    """A baseline's anchor: the model with the best mean predicted score on the train rows."""
    return decision.anchor(predicted[suite.rows("train")].mean(axis=0), list_prices(suite))


def singles_on(prep: Prepared, rows: np.ndarray) -> metrics.SingleModels:
    s = prep.suite
    return metrics.single_models(s.model_names, prep.accept[rows], s.scores[rows], s.costs[rows])


def costs_for(suite: Suite, expected_output_tokens: np.ndarray) -> np.ndarray:
    """[Q, M] estimated cost: the query's input tokens and a predicted answer length, at list prices."""
    prices_in = np.array([m.input_usd_per_mtok for m in suite.models])
    prices_out = np.array([m.output_usd_per_mtok for m in suite.models])
    return decision.estimate_costs(suite.input_tokens, np.maximum(expected_output_tokens, 0.0), prices_in, prices_out)


def _output_prices(suite: Suite) -> np.ndarray:
    return np.array([m.output_usd_per_mtok for m in suite.models])


def cost_scales(suite: Suite, estimated_costs: np.ndarray) -> tuple[float, ...]:
    """The decision rule's forms searched on valid: relative (0), and absolute with the scale of a
    typical train query's priciest estimate."""
    typical = float(np.median(estimated_costs[suite.rows("train")].max(axis=1)))
    return (0.0, typical) if typical > 0 else (0.0,)


# --- TagRouter -----------------------------------------------------------------------------
@dataclass
class TagTable:
    """Counts from `train` and per-query tag confidences for one tag set."""

    names: list[str]  # tag names, `*` first
    confidence: np.ndarray  # [Q, T] the tagger's confidence, 0 where a query lacks the tag
    counts: np.ndarray  # [T, M, 5]
    carries: np.ndarray  # [Q, T] 0/1

    def without(self, prep: "Prepared", rows: np.ndarray) -> "TagTable":
        """The same table with the counts of `rows` taken out (counts are additive)."""
        held = count_matrix(self.carries[rows], prep.outcomes[rows], prep.suite.output_tokens[rows])
        return TagTable(self.names, self.confidence, self.counts - held, self.carries)


def tag_table(prep: Prepared, tags: list[list[tuple[str, float]]]) -> TagTable:
    suite = prep.suite
    train = suite.rows("train")
    names_per_query = [[t for t, _ in q] for q in tags]
    index = tag_index([names_per_query[r] for r in train])  # tags unseen in train carry no counts
    carries = incidence(names_per_query, index)
    confidence = np.zeros_like(carries)
    for q, query_tags in enumerate(tags):
        for name, weight in query_tags:
            if name in index:
                confidence[q, index[name]] = max(weight, 0.0)
    counts = count_matrix(carries[train], prep.outcomes[train], suite.output_tokens[train])
    return TagTable(list(index), confidence, counts, carries)


def tagrouter_predict(prep: Prepared, table: TagTable, params: ScoringParams,
                      rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([Q, M] scores, [Q, M] estimated costs) with the scorer's count-to-score rule (for `rows` only
    when given: [len(rows), M])."""
    all_counts, counts = table.counts[0], table.counts[1:]
    confidence = table.confidence if rows is None else table.confidence[rows]
    weights = scoring.tag_weights(confidence[:, 1:], counts, params, table.names[1:])
    prior = scoring.prior_rates(all_counts, params)
    rates = scoring.tag_rates(counts, prior, params)
    scores = scoring.score_matrix(rates, weights, prior)
    expected = scoring.expected_output_matrix(counts, all_counts, weights, params)
    costs = costs_for(prep.suite, np.zeros(prep.suite.scores.shape[1]))  # input part only
    if rows is not None:
        costs = costs[rows]
    return scores, costs + expected * _output_prices(prep.suite) * decision.USD_PER_MTOK


def tagrouter_anchor(prep: Prepared, table: TagTable, params: ScoringParams) -> int:
    """TagRouter's anchor, as the router serves it: the highest overall (`*`) rate of the counts."""
    return decision.anchor(scoring.prior_rates(table.counts[0], params), list_prices(prep.suite))


def with_topics(base: list[list[tuple[str, float]]], topics: TopicModel | None,
                embeddings: np.ndarray) -> list[list[tuple[str, float]]]:
    if topics is None:
        return base
    extra = topics.assign(embeddings)
    return [b + e for b, e in zip(base, extra)]


# --- selection on valid --------------------------------------------------------------------
@dataclass
class RouterResult:
    name: str
    setting: dict
    selection_auc: float
    test_points: np.ndarray
    candidates: int = 0
    extra: dict = field(default_factory=dict)
    anchor: int | None = None  # the quality margin's anchor model (index), from train


def cv_folds(prep: Prepared, folds: int = CV_FOLDS) -> list[np.ndarray]:
    """Train rows split into `folds` fixed random parts (no folds: selection on valid alone)."""
    if folds < 2:
        return []
    train = prep.suite.rows("train")
    return np.array_split(np.random.default_rng(0).permutation(train), folds)


def selection_rows(prep: Prepared, folds: list[np.ndarray]) -> np.ndarray:
    """Rows whose routing picks the settings: valid, plus train when predictions there are out-of-fold."""
    valid = prep.suite.rows("valid")
    return np.concatenate([prep.suite.rows("train"), valid]) if folds else valid


def _choose(prep: Prepared, name: str, candidates, rows: np.ndarray, keep: list | None = None) -> RouterResult:
    """Keeps the setting with the best AUC on `rows` (the simpler, earlier one on ties).

    candidates: (setting, [Q, M] predicted scores, [Q, M] estimated costs, anchor model index).
    keep: when a list, every (setting with its cost scale, AUC, scores, costs, anchor) tried is appended."""
    suite = prep.suite
    test = suite.rows("test")
    singles = singles_on(prep, rows)
    lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
    best, tried, tried_settings = None, 0, []
    for setting, predicted, est, anchor in candidates:
        for scale in cost_scales(suite, est):
            tried += 1
            pts = sweep(prep, rows, predicted, est, scale, anchor=anchor)
            auc = metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)
            tried_settings.append(({**setting, "cost_rule": "absolute" if scale > 0 else "relative"}, auc))
            if keep is not None:
                keep.append(({**setting, "cost_scale_usd": scale}, auc, predicted, est, anchor))
            if best is None or auc > best[1] + 1e-9:
                best = ({**setting, "cost_scale_usd": scale}, auc, predicted, est, anchor)
    setting, auc, predicted, est, anchor = best
    return RouterResult(name, setting, auc, sweep(prep, test, predicted, est, setting["cost_scale_usd"], anchor=anchor),
                        tried, {"alternatives": alternatives(tried_settings)}, anchor)


def alternatives(tried: list[tuple[dict, float]]) -> dict:
    """For each knob and each value tried: the best selection AUC among settings with that value.

    This is the measurement behind each choice: how much a value loses against the best."""
    out: dict[str, dict[str, float]] = {}
    for setting, auc in tried:
        for key, value in setting.items():
            label = ",".join(map(str, value)) or "none" if isinstance(value, (list, tuple)) else str(value)
            out.setdefault(key, {})
            out[key][label] = max(out[key].get(label, -1.0), round(float(auc), 5))
    return {k: v for k, v in out.items() if len(v) > 1}


@dataclass
class TagRouterChoice:
    """TagRouter's settings chosen on `valid`: topic granularities and scoring parameters."""

    topics: TopicModel | None
    params: ScoringParams
    result: RouterResult
    tags: list[list[tuple[str, float]]]  # every query's tags under the chosen topics

    @property
    def anchor(self) -> int | None:
        return self.result.anchor


def select_tagrouter(prep: Prepared, granularities=TOPIC_GRANULARITIES, folds: int = CV_FOLDS,
                     parsimony: bool = True) -> TagRouterChoice:
    """Fits TagRouter on train for every setting of its grid and keeps the best AUC on the
    selection rows (valid, and train out-of-fold); with `parsimony`, the tag set (level weights and
    topic granularities, the second stage) is the smallest within one paired standard error of the
    best (`one_se_rule` with `tag_set_size`: a level is kept only when the selection rows show it
    helps by more than their noise), and when that is a smaller set than the best's, the rewards,
    prior strength and evidence are chosen again for it (a third stage)."""
    train = prep.suite.rows("train")
    parts = cv_folds(prep, folds)
    topic_models: dict[tuple, TopicModel | None] = {}
    tags_by: dict[tuple, list] = {}

    tables: dict[tuple, tuple] = {}

    def table_for(granularity):
        if granularity not in tables:
            topic_models[granularity] = fit_topics(prep.embeddings[train], granularity) if granularity else None
            tags_by[granularity] = with_topics(prep.base_tags, topic_models[granularity], prep.embeddings)
            table = tag_table(prep, tags_by[granularity])
            tables[granularity] = table, [(part, table.without(prep, part)) for part in parts]
        return tables[granularity]

    def predict(granularity, params):
        table, held_out = table_for(granularity)
        s, c = tagrouter_predict(prep, table, params)
        for part, partial in held_out:
            s[part], c[part] = tagrouter_predict(prep, partial, params, part)
        return {"topics": list(granularity), **asdict(params)}, s, c, tagrouter_anchor(prep, table, params)

    def rewards_and_prior():
        for granularity in granularities:
            for tie, loss, k, evidence in itertools.product(TIE_REWARDS, LOSS_REWARDS, PRIOR_STRENGTHS, TAG_EVIDENCE):
                yield predict(granularity, ScoringParams(tie_reward=tie, loss_reward=loss, prior_strength=k,
                                                         tag_evidence=evidence))

    rows = selection_rows(prep, parts)
    first = _choose(prep, "tagrouter", rewards_and_prior(), rows)
    base = {k: v for k, v in first.setting.items() if k not in ("topics", "cost_scale_usd")}

    def level_weights():
        for granularity in granularities:
            for w_domain, w_topic, w_attr in LEVEL_WEIGHTS:
                yield predict(granularity, ScoringParams(**{**base, "level_weight_domain": w_domain,
                                                            "level_weight_topic": w_topic,
                                                            "level_weight_attr": w_attr}))

    tried_second: list = []
    second = _choose(prep, "tagrouter", level_weights(), rows, keep=tried_second)
    result = second if second.selection_auc > first.selection_auc + 1e-9 else first
    third = None
    if parsimony and parts:
        simpler = one_se_rule(prep, result, tried_second, parts, tag_set_size)
        if simpler is not result:
            # the rewards, prior and evidence were chosen for the larger tag set: choose them again
            # for the one kept (the first stage's grid at its level weights and topic granularity)
            kept = simpler.setting
            levels = {k: kept[k] for k in ("level_weight_domain", "level_weight_topic", "level_weight_attr")}

            def rewards_for_kept():
                for tie, loss, k, evidence in itertools.product(TIE_REWARDS, LOSS_REWARDS, PRIOR_STRENGTHS,
                                                                TAG_EVIDENCE):
                    yield predict(tuple(kept["topics"]), ScoringParams(tie_reward=tie, loss_reward=loss,
                                                                       prior_strength=k, tag_evidence=evidence,
                                                                       **levels))

            third = _choose(prep, "tagrouter", rewards_for_kept(), rows)
            if third.selection_auc > simpler.selection_auc + 1e-9:
                simpler = RouterResult(third.name, third.setting, third.selection_auc, third.test_points,
                                       0, simpler.extra, third.anchor)
        result = simpler
    merged = {k: dict(v) for k, v in first.extra["alternatives"].items()}
    for key, values in second.extra["alternatives"].items():
        for value, auc in values.items():
            merged.setdefault(key, {})[value] = max(merged.get(key, {}).get(value, -1.0), auc)
    result = RouterResult(result.name, result.setting, result.selection_auc, result.test_points,
                          first.candidates + second.candidates + (third.candidates if third else 0),
                          {"alternatives": merged, **{k: v for k, v in result.extra.items() if k == "one_se_rule"}},
                          result.anchor)
    setting = dict(result.setting)
    granularity = tuple(setting.pop("topics"))  # the rest are ScoringParams fields, cost_scale_usd included
    return TagRouterChoice(topic_models[granularity], ScoringParams(**setting), result, tags_by[granularity])


def tag_set_size(setting: dict) -> tuple[int, int, int]:
    """How many tag sources a setting uses: (levels kept among domain, topic and attributes; topic
    granularities fitted on the suite, counted only when the topic level is kept; granularities
    fitted at all, so that a dropped topic level also fits none)."""
    levels = sum(setting.get(f"level_weight_{lv}", 1.0) > 0 for lv in ("domain", "topic", "attr"))
    fitted = len(setting.get("topics", ()))
    return levels, fitted if setting.get("level_weight_topic", 1.0) > 0 else 0, fitted


def group_aucs(prep: Prepared, groups: list[np.ndarray], predicted: np.ndarray, est: np.ndarray,
               scale: float, anchor: int | None) -> np.ndarray:
    """[G] the AUC of one setting on each group of selection rows (each train fold, and valid)."""
    out = []
    for rows in groups:
        singles = singles_on(prep, rows)
        lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
        pts = sweep(prep, rows, predicted, est, scale, anchor=anchor)
        out.append(metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)
                   if hi > lo else np.nan)
    return np.array(out)


def one_se_rule(prep: Prepared, best: RouterResult, tried: list, parts: list[np.ndarray], size) -> RouterResult:
    """The one-standard-error rule, the same for every router: among the settings `tried` (as kept
    by `_choose`), the smallest by `size` (a sort key: smaller is simpler) whose selection AUC is within
    one standard error of the best's, the standard error being that of the paired difference from its
    spread over the selection groups (each train fold, and valid). Returns `best` when no simpler
    setting qualifies."""
    groups = [*parts, prep.suite.rows("valid")]
    ranked = sorted(tried, key=lambda t: -t[1])
    top_setting, top_auc, top_p, top_c, top_a = ranked[0]
    if best.selection_auc > top_auc + 1e-9:  # the best was not among `tried`: nothing to simplify
        return best
    top_groups = group_aucs(prep, groups, top_p, top_c, top_setting["cost_scale_usd"], top_a)
    chosen = None
    for cand in sorted(tried, key=lambda t: (size(t[0]), -t[1])):
        setting, auc, p, c, a = cand
        if size(setting) >= size(top_setting):
            break
        diff = top_groups - group_aucs(prep, groups, p, c, setting["cost_scale_usd"], a)
        diff = diff[np.isfinite(diff)]
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if top_auc - auc <= se + 1e-12:
            chosen = cand
            break
    if chosen is None:
        return best
    setting, auc, p, c, a = chosen
    test = prep.suite.rows("test")
    extra = dict(best.extra, one_se_rule={"best_setting": top_setting, "best_selection_auc": top_auc})
    return RouterResult(best.name, setting, auc, sweep(prep, test, p, c, setting["cost_scale_usd"], anchor=a),
                        best.candidates, extra, a)


def baseline_predictions(prep: Prepared, kind: str, parts: list[np.ndarray]):
    """(setting, [Q, M] scores, [Q, M] answer lengths) per setting, fitted on train; on train rows
    out-of-fold. Each baseline predicts the answer length with its own method and setting, as
    TagRouter does with its counts."""
    suite, x = prep.suite, prep.embeddings
    train = suite.rows("train")
    ks = baselines.knn_ks(len(train))  # every fold's fit gives the same settings as the whole train set's
    full = [list(p) for p in baselines.predict_all(kind, x[train], suite.scores[train], x, suite.output_tokens[train],
                                                   ks)]
    for part in parts:
        rest = np.setdiff1d(train, part)
        fold = baselines.predict_all(kind, x[rest], suite.scores[rest], x[part], suite.output_tokens[rest], ks)
        for whole, (setting, p, length) in zip(full, fold, strict=True):
            if whole[0] != setting:  # a fold's prediction must never land under another setting
                raise RuntimeError(f"{kind}: fold setting {setting} against {whole[0]}")
            whole[1][part], whole[2][part] = p, length
    return full


def evaluate(prep: Prepared, show_progress: bool = True, routers=("tagrouter", *BASELINES),
             folds: int = CV_FOLDS) -> dict:
    """The RESULT.json document for one prepared suite."""
    suite = prep.suite
    train, valid, test = (suite.rows(s) for s in ("train", "valid", "test"))
    if len(valid) == 0 or len(test) == 0:
        raise ValueError(f"{suite.path}: splits 'valid' and 'test' must not be empty")
    test_singles = singles_on(prep, test)
    parts = cv_folds(prep, folds)
    results: list[RouterResult] = []
    bar = _progress(len(routers), "fitting routers", show_progress)
    for name in routers:
        if name == "tagrouter":
            result = select_tagrouter(prep, folds=folds).result
        else:
            preds = baseline_predictions(prep, name, parts)
            tried: list = []
            result = _choose(prep, name, ((setting, p, costs_for(suite, length), baseline_anchor(suite, p))
                                          for setting, p, length in preds), selection_rows(prep, parts), keep=tried)
            if parts:
                result = one_se_rule(prep, result, tried, parts, lambda s, kind=name: baselines.complexity(kind, s))
        results.append(result)
        bar.update()
    bar.close()

    doc = {
        "suite": suite.name,
        "queries": {s: int(len(suite.rows(s))) for s in ("train", "valid", "test")},
        "tie_margin": suite.tie_margin,
        "vocabulary_version": prep.vocabulary_version,
        "routers": {},
        "single_models": {
            n: {"ar": float(test_singles.ar[i]), "quality": float(test_singles.quality[i]),
                "cost_usd": float(test_singles.cost[i])} for i, n in enumerate(test_singles.names)},
        "best_single_model": test_singles.names[test_singles.best],
        "oracle": metrics.oracle(prep.accept[test], suite.scores[test], suite.costs[test]),
        # how far the embeddings predict where a no-pricier model rescues the best one (selection rows)
        "headroom": headroom.measure(prep.embeddings, prep.accept, list_prices(suite), suite.model_names,
                                     singles_on(prep, train).best, selection_rows(prep, parts), train, parts),
    }
    for r in results:
        doc["routers"][r.name] = _router_doc(r.test_points, test_singles) | {
            "setting": r.setting, "selection_auc": r.selection_auc, "settings_tried": r.candidates, **r.extra,
            "anchor": None if r.anchor is None else suite.model_names[r.anchor],
            "selected_on": f"train out-of-fold ({folds} folds) + valid" if parts else "valid"}
    hull = metrics.concave_hull(np.stack([test_singles.cost, test_singles.ar], axis=1))
    doc["routers"]["random"] = _router_doc(np.concatenate([hull, np.full((len(hull), 1), np.nan)], axis=1),
                                           test_singles) | {"setting": {}, "selection_auc": None, "settings_tried": 0}
    if len(suite.models) == 2:
        strong = test_singles.priciest
        weak = 1 - strong
        for name, r in doc["routers"].items():
            # the share of calls to the strong model is not kept per point; recover it from cost
            c_w, c_s = test_singles.cost[weak], test_singles.cost[strong]
            pts = np.array(r["curve"])
            share = np.clip((pts[:, 0] - c_w) / (c_s - c_w), 0, 1) if c_s > c_w else pts[:, 0] * 0
            r.update(metrics.two_model_gap_recovery(np.stack([share, pts[:, 1]], axis=1),
                                                    float(test_singles.ar[weak]), float(test_singles.ar[strong])))
    return doc


def _router_doc(points: np.ndarray, singles: metrics.SingleModels) -> dict:
    summary = metrics.curve_summary(points, singles)
    uniq = sorted({(round(float(c), 6), round(float(a), 6)) for c, a in points[:, :2]})
    return summary | {"curve": [list(p) for p in uniq]}


def must_show(doc: dict) -> dict:
    """The issue's acceptance checks on one result document."""
    routers = doc["routers"]
    tag = routers["tagrouter"]
    best = doc["single_models"][doc["best_single_model"]]
    return {
        "auc_at_least_every_baseline": all(tag["auc"] >= r["auc"] - 1e-12 for n, r in routers.items() if n != "tagrouter"),
        "beats_best_single_model_at_no_more_cost": tag["best_ar"] > best["ar"] and tag["best_ar_cost_pct"] <= 100.0,
    }


def write_result(doc: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_nan_to_none) + "\n")


def _nan_to_none(value):
    raise TypeError(f"not JSON serialisable: {value!r}")


def clean_nans(doc):
    """NaN -> None everywhere (JSON has no NaN)."""
    if isinstance(doc, dict):
        return {k: clean_nans(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [clean_nans(v) for v in doc]
    if isinstance(doc, float) and not np.isfinite(doc):
        return None
    return doc


def plot(doc: dict, path: Path) -> None:
    """AR against cost: every router's frontier and every single model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    styles = {"tagrouter": ("C3", "-", 2.2), "knn": ("C0", "--", 1.3), "mf": ("C2", "--", 1.3),
              "forc": ("C4", "--", 1.3), "random": ("0.5", ":", 1.3)}
    for name, r in doc["routers"].items():
        color, ls, lw = styles.get(name, (None, "-", 1.2))
        front = metrics.pareto_frontier(np.array(r["curve"]).reshape(-1, 2))
        ax.plot(front[:, 0], front[:, 1], ls, color=color, lw=lw, marker=".", ms=3,
                label=f"{name} (AUC {r['auc']:.3f})")
    for name, m in doc["single_models"].items():
        ax.scatter([m["cost_usd"]], [m["ar"]], color="k", s=14, zorder=5)
        ax.annotate(name.split("/")[-1], (m["cost_usd"], m["ar"]), fontsize=7, xytext=(3, -8),
                    textcoords="offset points")
    o = doc["oracle"]
    ax.scatter([o["cost_usd"]], [o["ar"]], marker="*", color="gold", edgecolor="k", s=90, zorder=6, label="oracle")
    ax.set_xlabel("total cost of the test queries (USD)")
    ax.set_ylabel("accept rate (AR)")
    ax.set_title(f"{doc['suite']}: AR against cost on test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- the served weights, offline ---------------------------------------------------------
def score_with_weights(weights, tagged, prices_in: np.ndarray, prices_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([Q, M] scores, [Q, M] estimated costs) of weights for tagged queries, as the scorer and router
    compute them (same pure functions; the tagger's token count prices the input)."""
    from tagrouter.core.scoring import ALL_QUERIES_TAG
    from services.scorer.servicer import counts_matrix

    names = weights.model_names
    tags = [t for t in weights.counts if t != ALL_QUERIES_TAG]
    column = {t: i for i, t in enumerate(tags)}
    counts = counts_matrix([weights.counts[t] for t in tags], names)
    all_counts = counts_matrix([weights.counts[ALL_QUERIES_TAG]], names)[0]
    conf = np.zeros((len(tagged), len(tags)))
    for q, t in enumerate(tagged):
        for name, _, score in t.tags:
            if name in column:
                conf[q, column[name]] = max(score, 0.0)
    params = weights.params
    conf = scoring.tag_weights(conf, counts, params, tags)
    prior = scoring.prior_rates(all_counts, params)
    scores = scoring.score_matrix(scoring.tag_rates(counts, prior, params), conf, prior)
    expected = scoring.expected_output_matrix(counts, all_counts, conf, params)
    tokens = np.array([t.input_tokens for t in tagged], dtype=np.float64)[:, None]
    return scores, decision.estimate_costs(tokens, expected, prices_in, prices_out)


def calibrate(suite: Suite, weights, tagger, split: str = "valid", target_cost_pct: float | None = None,
              target_top_share: float | None = None) -> dict:
    """The smallest knob on LAMBDAS whose routing of `split` meets the target (cost budget as a
    percentage of always sending the most expensive model, or share of queries sent to it)."""
    missing = [m for m in weights.model_names if m not in suite.model_names]
    if missing:
        raise ValueError(f"{suite.path}: the suite has no rows for model {missing[0]!r} of the weights")
    rows = suite.rows(split)
    if len(rows) == 0:
        raise ValueError(f"{suite.path}: split {split!r} is empty")
    columns = [suite.model_names.index(m) for m in weights.model_names]
    tagged = tagger.tag_many([suite.queries[r] for r in rows])
    prices_in = np.array([m.input_usd_per_mtok for m in weights.models])
    prices_out = np.array([m.output_usd_per_mtok for m in weights.models])
    predicted, est = score_with_weights(weights, tagged, prices_in, prices_out)
    true_costs = suite.costs[np.ix_(rows, columns)]
    accept = metrics.accepted(suite.scores[np.ix_(rows, columns)], suite.tie_margin)
    top = int(np.argmax(prices_in + prices_out))
    budget_all = true_costs[:, top].sum()
    def at(lam: float) -> dict:
        choice = decision.choose(predicted, est, lam, weights.params.cost_scale_usd)
        cost = true_costs[np.arange(len(rows)), choice].sum()
        point = {"cost_weight": lam, "cost_pct": float(100 * cost / budget_all) if budget_all > 0 else 0.0,
                 "top_share": float(np.mean(choice == top)), "ar": float(accept[np.arange(len(rows)), choice].mean())}
        met = (target_cost_pct is None or point["cost_pct"] <= target_cost_pct + 1e-9) and \
              (target_top_share is None or point["top_share"] <= target_top_share + 1e-9)
        return point | {"met": bool(met)}

    # the coarse sweep brackets the target, bisection finds the smallest knob that meets it
    previous, found = 0.0, None
    for lam in LAMBDAS:
        found = at(float(lam))
        if found["met"]:
            break
        previous = float(lam)
    if found["met"] and found["cost_weight"] > previous:
        lo, hi = previous, found["cost_weight"]
        for _ in range(40):
            mid = (lo + hi) / 2
            point = at(mid)
            if point["met"]:
                hi, found = mid, point
            else:
                lo = mid
    return found | {"top_model": weights.model_names[top], "split": split, "queries": int(len(rows)),
                           "target_cost_pct": target_cost_pct, "target_top_share": target_top_share}


def format_table(doc: dict) -> str:
    """The routers and single models of one result, as a Markdown table, and the headroom in a line."""
    def pct(v):
        return "never" if v is None else f"{v:.1f}%"

    lines = ["| router | AUC | PAUC | best AR (≤ best model's cost) | its cost | uplift | cost to match |",
             "|---|---|---|---|---|---|---|"]
    for name, r in sorted(doc["routers"].items(), key=lambda kv: -kv[1]["auc"]):
        best_ar = "–" if r["best_ar"] is None else f"{r['best_ar']:.4f}"
        uplift = "–" if r["uplift_pct"] is None else f"{r['uplift_pct']:+.2f}%"
        lines.append(f"| {name} | {r['auc']:.4f} | {r['pauc']:.4f} | {best_ar} | {pct(r['best_ar_cost_pct'])} | "
                     f"{uplift} | {pct(r['cost_to_match_pct'])} |")
    lines += ["", "| single model | AR | quality | cost (USD) |", "|---|---|---|---|"]
    for name, m in sorted(doc["single_models"].items(), key=lambda kv: -kv[1]["cost_usd"]):
        mark = " (best)" if name == doc["best_single_model"] else ""
        lines.append(f"| {name}{mark} | {m['ar']:.4f} | {m['quality']:.4f} | {m['cost_usd']:.4f} |")
    o = doc["oracle"]
    lines.append(f"| oracle (cheapest accepted) | {o['ar']:.4f} | {o['quality']:.4f} | {o['cost_usd']:.4f} |")
    h = doc["headroom"]
    lines += ["", f"Headroom on the selection rows (tagrouter/headroom.py): {h['best_model']} fails "
                  f"{h['best_model_misses']} of {h['rows']} queries, {h['rescuable']} of which another model no pricier "
                  f"gets right; the best of {h['predictors_tried']} orders predicted from the embeddings gains net "
                  f"+{h['best_gain_queries']} queries, the best of as many random orders +"
                  f"{h['random_orders_gain_queries']:.2f} on average."]
    return "\n".join(lines)
