"""TagRouter as a router of the evaluation: per-(tag, model) outcome counts from train, scored by
the scorer's own count-to-score rule (`tagrouter.core.scoring`).

`score_tagged` is the one batched scoring pipeline of the offline code: the evaluation, the
ablation and `tagrouter calibrate` (over served weights) all call it, and it calls the same core
functions the scorer and the router serve with.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tagrouter.core import scoring
from tagrouter.core.scoring import ScoringParams
from tagrouter.offline import baselines, sweep
from tagrouter.offline.fit import count_matrix, incidence, tag_index
from tagrouter.offline.prepare import Prepared
from tagrouter.offline.routers.base import Prediction, Router
from tagrouter.offline.topics import TopicModel, fit_topics

TOPIC_GRANULARITIES = ((), (4, 16, 64), (4, 8, 16, 32, 64, 128))


def score_tagged(counts: np.ndarray, all_counts: np.ndarray, confidence: np.ndarray, names: list[str],
                 params: ScoringParams, combine=scoring.score_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([Q, M] scores, [Q, M] expected output tokens, [M] overall rates) of queries with the tagger's
    `confidence` [Q, T] in tags `names` [T] whose counts are [T, M, 5], the `*` counts [M, 5]:
    the scorer's rule. `combine` is how a query's tags are combined, for its rates and its answer
    lengths alike: the served weighted mean (with it the lengths are `scoring.expected_output_matrix`);
    an experiment may pass another."""
    weights = scoring.tag_weights(confidence, counts, params, names)
    prior = scoring.prior_rates(all_counts, params)
    scores = combine(scoring.tag_rates(counts, prior, params), weights, prior)
    overall_length, tag_lengths = scoring.answer_lengths(counts, all_counts, params)
    return scores, combine(tag_lengths, weights, overall_length), prior


@dataclass
class TagTable:
    """Counts from some train rows and per-query tag confidences for one tag set."""

    names: list[str]  # tag names, `*` first
    confidence: np.ndarray  # [Q, T] the tagger's confidence, 0 where a query lacks the tag
    counts: np.ndarray  # [T, M, 5]


def tag_table(prep: Prepared, tags: list[list[tuple[str, float]]], rows: np.ndarray) -> TagTable:
    """The counts of `rows` for the tags of the train split (tags unseen in train carry no counts)."""
    suite = prep.suite
    names_per_query = [[t for t, _ in q] for q in tags]
    index = tag_index([names_per_query[r] for r in suite.rows("train")])
    carries = incidence(names_per_query, index)
    confidence = np.zeros_like(carries)
    for q, query_tags in enumerate(tags):
        for name, weight in query_tags:
            if name in index:
                confidence[q, index[name]] = max(weight, 0.0)
    return TagTable(list(index), confidence, count_matrix(carries[rows], prep.outcomes[rows], suite.output_tokens[rows]))


def with_topics(base: list[list[tuple[str, float]]], topics: TopicModel | None,
                embeddings: np.ndarray) -> list[list[tuple[str, float]]]:
    if topics is None:
        return base
    extra = topics.assign(embeddings)
    return [b + e for b, e in zip(base, extra)]


def setting_of(granularity: tuple, params: ScoringParams) -> dict:
    """A TagRouter setting: its topic granularities and its scoring parameters."""
    return {"topics": list(granularity), **asdict(params)}


# The neighbour blend (offline only: the router serves tags alone): a query's score is
# (1 - w) * its tags' score + w * the mean outcome of its k nearest train queries.
NEIGHBOUR_KEYS = ("neighbours", "neighbour_weight")


def parse_setting(setting: dict) -> tuple[tuple, ScoringParams]:
    rest = {k: v for k, v in setting.items() if k not in NEIGHBOUR_KEYS}
    return tuple(rest.pop("topics")), ScoringParams(**rest)


def query_rates(outcomes: np.ndarray, params: ScoringParams) -> np.ndarray:
    """[Q, M] each query's reward per comparison for each model (the scale of a tag's rate)."""
    total = outcomes.sum(axis=-1, keepdims=True)
    shares = np.divide(outcomes, total, out=np.zeros_like(outcomes), where=total > 0)
    return shares @ params.rewards()


class SuiteTags:
    """Every query's tags per topic granularity; the topics cluster the train split's embeddings
    (no outcomes), once per suite, so every fold's fit shares them."""

    def __init__(self, prep: Prepared):
        self.prep = prep
        self.topics: dict[tuple, TopicModel | None] = {}
        self.tags: dict[tuple, list] = {}

    def __call__(self, granularity: tuple) -> list[list[tuple[str, float]]]:
        if granularity not in self.tags:
            prep = self.prep
            train = prep.suite.rows("train")
            self.topics[granularity] = fit_topics(prep.embeddings[train], granularity) if granularity else None
            self.tags[granularity] = with_topics(prep.base_tags, self.topics[granularity], prep.embeddings)
        return self.tags[granularity]


class FittedTagRouter:
    """TagRouter's counts from some rows, one table per topic granularity."""

    def __init__(self, prep: Prepared, rows: np.ndarray, tags: SuiteTags, combine):
        self.prep, self.rows, self.tags, self.combine = prep, rows, tags, combine
        self.tables: dict[tuple, TagTable] = {}

    def table(self, granularity: tuple) -> TagTable:
        if granularity not in self.tables:
            self.tables[granularity] = tag_table(self.prep, self.tags(granularity), self.rows)
        return self.tables[granularity]

    def predict(self, setting: dict, rows: np.ndarray) -> Prediction:
        granularity, params = parse_setting(setting)
        table = self.table(granularity)
        scores, expected, prior = score_tagged(table.counts[1:], table.counts[0], table.confidence[rows][:, 1:],
                                               table.names[1:], params, self.combine)
        k, w = setting.get("neighbours", 0), setting.get("neighbour_weight", 0.0)
        if k and w > 0:
            near_scores, near_lengths = self.neighbours(k, params, rows)
            scores, expected = (1 - w) * scores + w * near_scores, (1 - w) * expected + w * near_lengths
        return Prediction(scores, expected, prior)

    def neighbours(self, k: int, params: ScoringParams, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([Q, M] mean rate, [Q, M] mean answer length) of each query's k nearest fitted rows."""
        prep, fitted = self.prep, self.rows
        m = prep.outcomes.shape[1]
        y = np.concatenate([query_rates(prep.outcomes[fitted], params), prep.suite.output_tokens[fitted]], axis=1)
        both = baselines.knn_predict(prep.embeddings[fitted], y, prep.embeddings[rows], [k])[k]
        return both[:, :m], both[:, m:]


class TagRouter(Router):
    """TagRouter: fitted counts, the scorer's rule; its settings chosen in stages (`tag_router_selection`)."""

    def __init__(self, name: str = "tagrouter", granularities=TOPIC_GRANULARITIES, parsimony: bool = False,
                 combine=scoring.score_matrix, knob_path: sweep.KnobPath = sweep.knob_path, neighbours: bool = False,
                 caution: bool = False):
        super().__init__(name, knob_path)
        self.granularities = tuple(granularities)
        # the one-standard-error rule toward the smallest tag set: off by default, as a query's score is
        # a mean over its tags, so fewer levels is not less variance, and on small data the rule dropped
        # levels that the train rows left out of the fit showed were worth keeping (docs/DESIGN-ROWS.md)
        self.parsimony = parsimony
        self.neighbours = neighbours  # also choose the neighbour blend (offline only: NEIGHBOUR_KEYS)
        # also the caution stage (tag_router_selection): off by default, as on the train rows left out of
        # the fit it loses .0057 on routerbench-11 at 150 train queries (docs/DESIGN-ROWS.md)
        self.caution = caution
        self.combine = combine  # the query score from its tags' rates (scoring.score_matrix is served)
        self._tags: dict[int, SuiteTags] = {}

    def suite_tags(self, prep: Prepared) -> SuiteTags:
        found = self._tags.get(id(prep))
        if found is None or found.prep is not prep:
            found = self._tags[id(prep)] = SuiteTags(prep)
        return found

    def settings(self, prep: Prepared) -> list[dict]:
        from tagrouter.offline.routers import tag_router_selection

        return list(tag_router_selection.first_stage(self.granularities))

    def fit(self, prep: Prepared, rows: np.ndarray) -> FittedTagRouter:
        return FittedTagRouter(prep, rows, self.suite_tags(prep), self.combine)

    def complexity(self, setting: dict) -> tuple:
        from tagrouter.offline.routers.tag_router_selection import tag_set_size

        return tag_set_size(setting)

    def select(self, prep: Prepared, folds: list[np.ndarray]):
        return self.choose(prep, folds).result

    def choose(self, prep: Prepared, folds: list[np.ndarray] | None = None):
        """Its settings, chosen in stages (`tag_router_selection.select`): a `TagRouterChoice`."""
        from tagrouter.offline import selection
        from tagrouter.offline.routers import tag_router_selection

        folds = selection.cv_folds(prep) if folds is None else folds
        return tag_router_selection.select(self, prep, folds)
