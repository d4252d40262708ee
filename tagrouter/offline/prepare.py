"""A suite made ready for the evaluation: embedded and tagged once, and what follows from its rows.

The encoder runs once per suite: its embeddings feed the tagger's tags, the suite-fitted topic
tags and every baseline. Estimated costs price a predicted answer length with the decision
rule's own `decision.estimate_costs`, as the router does.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from tagrouter.core import decision, scoring
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.suite import Suite


def progress(total: int, desc: str, enabled: bool):
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
    features: np.ndarray | None = None  # [Q, width] the tagger heads' input, when the tagger has heads


def prepare(suite: Suite, tagger, show_progress: bool = True) -> Prepared:
    """Embeds every query once and tags it with the tagger's own selection rule."""
    start = time.perf_counter()
    if tagger.vocabulary.groups:  # topics are fitted per suite here: start from the hand taxonomy
        tagger = tagger.with_vocabulary(tagger.vocabulary.without_groups())
    bar = progress(len(suite.queries), "embedding queries", show_progress)
    embeddings, features = tagger.encoder.embed_with_features(suite.queries, progress=bar.update,
                                                              features=tagger.heads is not None)
    bar.close()
    counts = [len(e.ids) for e in tagger.encoder.tokenizer.encode_batch(suite.queries)]
    tagged = tagger.tag_encoded(suite.queries, embeddings, counts, features=features)
    base_tags = [[(name, float(score)) for name, _, score in t.tags] for t in tagged]
    return Prepared(suite, embeddings, base_tags, metrics.accepted(suite.scores, suite.tie_margin),
                    scoring.pairwise_outcomes(suite.scores, suite.tie_margin), tagger.vocabulary.version,
                    time.perf_counter() - start, features)


def list_prices(suite: Suite) -> np.ndarray:
    """[M] input + output list price per million tokens: the anchor's tie-break (decision.anchor)."""
    return np.array([m.input_usd_per_mtok + m.output_usd_per_mtok for m in suite.models])


def singles_on(prep: Prepared, rows: np.ndarray) -> metrics.SingleModels:
    """Every single model's accept rate, quality and true cost on `rows`."""
    s = prep.suite
    return metrics.single_models(s.model_names, prep.accept[rows], s.scores[rows], s.costs[rows])


def estimated_costs(suite: Suite, expected_output_tokens: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """[Q, M] estimated cost: the query's input tokens and a predicted answer length, at list prices
    (`rows` of the suite when given: expected_output_tokens is then [len(rows), M])."""
    prices_in = np.array([m.input_usd_per_mtok for m in suite.models])
    prices_out = np.array([m.output_usd_per_mtok for m in suite.models])
    tokens = suite.input_tokens if rows is None else suite.input_tokens[rows]
    return decision.estimate_costs(tokens, np.maximum(expected_output_tokens, 0.0), prices_in, prices_out)


def cost_scales(suite: Suite, estimated: np.ndarray) -> tuple[float, ...]:
    """The decision rule's forms searched on the selection rows: relative (0), and absolute with the
    scale of a typical train query's priciest estimate."""
    typical = float(np.median(estimated[suite.rows("train")].max(axis=1)))
    return (0.0, typical) if typical > 0 else (0.0,)


def configured_tagger(use_heads: bool | None = None):
    """The tagger as the environment configures the served one (TAGROUTER_* settings, the trained
    heads with TAGROUTER_TAGGER_HEADS), with every core for offline embedding; `use_heads` overrides."""
    from services.common.settings import TaggerSettings
    from tagrouter.core.tag_model import TagModel

    s = TaggerSettings.from_env()
    return TagModel.load(s.model_dir, s.vocab_dir, s.tags_per_level, s.min_score, s.topic_min_score,
                         max(s.intra_op_threads, os.cpu_count() or 1),
                         use_heads=s.use_heads if use_heads is None else use_heads)
