"""The routing ablation of docs/TAGS.md: what each tag level adds to TagRouter's routing.

TagRouter is chosen and evaluated exactly as `tagrouter eval` does it (`routers.TagRouter`),
on tag sets that offer one more level at a time, or more tags per level, or the suite-fitted
topics; only the tags differ.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.prepare import Prepared, estimated_costs, prepare, singles_on
from tagrouter.offline.routers.tag_router import TOPIC_GRANULARITIES, TagRouter
from tagrouter.offline.selection import sweep

# Tag sets compared: which levels of the vocabulary a query's tags come from, and how many per level.
# The suite-fitted topics are the evaluation harness's own (clusters of the suite's train queries).
ABLATION_VARIANTS = (
    # name, levels, tags per level, suite-fitted topics, the one-standard-error rule on the tag set
    # (TagRouter's `parsimony`, off where served: docs/DESIGN-ROWS.md)
    ("task", ("task",), 2, False, False),
    ("task + domain", ("task", "domain"), 2, False, False),
    ("task + domain + topic", ("task", "domain", "topic"), 2, False, False),
    ("all levels (+ attr)", ("task", "domain", "topic", "attr"), 2, False, False),
    ("all levels + suite-fitted topics (served)", ("task", "domain", "topic", "attr"), 2, True, False),
    ("all levels + suite-fitted topics, 1-SE rule toward the smallest tag set", ("task", "domain", "topic", "attr"), 2,
     True, True),
)
BOOTSTRAP = 200  # paired resamples of the test queries for the spread of each AUC difference
SEED = 0


def ablation(suite_dirs: list[Path], tagger, variants=ABLATION_VARIANTS, show_progress: bool = False,
             bootstrap: int = BOOTSTRAP) -> list[dict]:
    """Test AUC of TagRouter per suite and tag set, each fitted on train with its settings chosen on the
    harness's selection rows (valid, and train out-of-fold).

    The evaluation's own router (`routers.TagRouter`, its staged selection and the same sweep): the
    same fit and decision rule as `tagrouter eval`, only the tags differ. Each variant's difference
    from the first is also measured on `bootstrap` paired resamples of the test queries (standard
    error, and the share of resamples where it is >= 0).
    """
    from tagrouter.offline.suite import load_suite

    rows = []
    for folder in suite_dirs:
        suite = load_suite(folder)
        base = prepare(suite, tagger, show_progress=show_progress)  # embeds the queries once
        counts = [len(e.ids) for e in tagger.encoder.tokenizer.encode_batch(suite.queries)]
        row = {"suite": suite.name, "auc": {}}
        predicted = {}
        for variant in variants:
            name, choice, prediction = _fit_variant(base, tagger, counts, variant)
            row["auc"][name] = metrics.curve_summary(choice.result.test_points, singles_on(base, suite.rows("test")))["auc"]
            row.setdefault("tag_sets", {})[name] = _kept(choice.result.setting, variant[1])
            predicted[name] = prediction
        row["spread"] = _bootstrap_spread(base, predicted, variants[0][0], bootstrap)
        rows.append(row)
    return rows


def _fit_variant(base: Prepared, tagger, counts: list[int], variant) -> tuple[str, object, tuple]:
    """One variant's tags for every query, TagRouter chosen on them, and its predictions
    (scores, estimated costs, cost scale, anchor) from the whole train split."""
    name, levels, per_level, suite_topics, parsimony = variant
    suite = base.suite
    vocab = tagger.vocabulary.restricted([lv for lv in levels if lv != "attr"])
    model = tagger.with_vocabulary(vocab, per_level)
    tagged = model.tag_encoded(suite.queries, base.embeddings, counts, features=base.features)
    tags = [[(n, float(sc)) for n, lv, sc in t.tags if lv in levels] for t in tagged]
    prep = dataclasses.replace(base, base_tags=tags, vocabulary_version=vocab.version)
    router = TagRouter(granularities=TOPIC_GRANULARITIES if suite_topics else ((),), parsimony=parsimony)
    choice = router.choose(prep)
    full = router.fit(prep, suite.rows("train")).predict(choice.result.setting, np.arange(len(suite.queries)))
    return name, choice, (full.scores, estimated_costs(suite, full.output_tokens), choice.params.cost_scale_usd,
                          choice.anchor)


def _kept(setting: dict, levels) -> dict:
    """The tag set a variant kept: its suite-fitted topic granularities and offered levels' weights."""
    return {"topics": list(setting["topics"]) if setting.get("level_weight_topic", 1.0) > 0 else [],
            **{lv: setting[f"level_weight_{lv}"] for lv in ("domain", "topic", "attr") if lv in levels}}


def _bootstrap_spread(base: Prepared, predicted: dict, first: str, bootstrap: int) -> dict:
    """name -> (standard deviation of its AUC difference from `first`, share of resamples >= 0) over
    `bootstrap` paired resamples of the test queries."""
    if not bootstrap:
        return {}
    test = base.suite.rows("test")
    rng = np.random.default_rng(SEED)
    samples = [rng.choice(test, size=len(test), replace=True) for _ in range(bootstrap)]
    auc_on = {}
    for name, (scores, costs, scale, anchor) in predicted.items():
        auc_on[name] = np.array([metrics.curve_summary(sweep(base, rows_b, scores, costs, scale, anchor),
                                                       singles_on(base, rows_b))["auc"] for rows_b in samples])
    return {name: (float(np.std(auc_on[name] - auc_on[first])), float(np.mean(auc_on[name] >= auc_on[first])))
            for name in predicted if name != first}


def ablation_table(rows: list[dict]) -> str:
    names = list(rows[0]["auc"]) if rows else []
    lines = ["| tags | " + " | ".join(r["suite"] for r in rows) + " |",
             "|---|" + "---:|" * len(rows)]
    for name in names:
        cells = []
        for r in rows:
            delta = r["auc"][name] - r["auc"][names[0]]
            spread = r.get("spread", {}).get(name)
            cells.append(f"{r['auc'][name]:.4f}" + ("" if name == names[0] else f" ({delta:+.4f}" + (
                f" ± {spread[0]:.4f}, {spread[1]:.0%}" if spread else "") + ")"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tag_set(kept: dict) -> str:
    levels = [lv for lv in ("domain", "topic", "attr") if kept.get(lv, 0) > 0]
    topics = kept.get("topics") or []
    return " + ".join(["task", *levels]) + (f" (topics K={','.join(map(str, topics))})" if topics else "")


def ablation_section(suites_dir: Path, tagger) -> str:
    from tagrouter.offline.suite import suite_folders

    suite_dirs = suite_folders(suites_dir)
    rows = ablation(suite_dirs, tagger)
    return render_ablation(rows, Path(suites_dir).name)


def render_ablation(rows: list[dict], suites_name: str = "suites") -> str:
    first = next(iter(rows[0]["auc"])) if rows else "task"
    worse = [f"{name} on {r['suite']} ({r['auc'][name] - r['auc'][first]:+.4f}, "
             f"{r.get('spread', {}).get(name, (0, 0))[1]:.0%} of resamples >= 0)"
             for r in rows for name in r["auc"] if name != first and r["auc"][name] < r["auc"][first]]
    names = list(rows[0]["auc"]) if rows else []
    chosen = "\n".join(f"- {name}: " + "; ".join(f"{r['suite']}: " + _tag_set(r.get("tag_sets", {}).get(name, {}))
                                                for r in rows) for name in names[1:])
    return f"""Test AUC (ROUTING.md, section 3) of TagRouter on every suite in `{suites_name}/`, fitted on
`train` with its scoring parameters chosen by the evaluation harness on `valid` and `train`
out-of-fold (`tagrouter.offline.routers.tag_router_selection`), for tag sets that offer one more level at a time,
then add the harness's topic
tags fitted on the suite's own training queries (what `tagrouter eval` and `tagrouter fit` serve).
Offered is not kept: as in `tagrouter eval`, the harness keeps the levels (weight 0 or 1) and topic
granularities with the best selection AUC; the last row is the served variant with the
one-standard-error rule toward the smallest tag set, which TagRouter applied until issue 15
(docs/DESIGN-ROWS.md). In brackets: the difference from task tags only,
its standard error over {BOOTSTRAP} paired bootstrap resamples of the test queries, and the share of
resamples in which it is >= 0.

{ablation_table(rows)}

Tag set kept on the selection rows (level weights 0/1 of the offered levels; suite-fitted topic
granularities):
{chosen or "n/a"}

Where a variant does worse than task tags only: {"; ".join(worse) or "nowhere"}.

Reading it. A row offers TagRouter one more kind of tag; the harness keeps a level only where the
selection rows support it, so a row falls below task tags only where
the selection rows and test disagree, and the bracket says by how much against the noise. The tags
are the served tagger's (the prototype tagger: up to 2 per level, the nearest prototypes above the
served cosine thresholds; the trained heads are compared with it in the section above). The served
weights carry the level weights (`ScoringParams.level_weight_domain`, `_topic`, `_attr`; task is
1): `tagrouter eval` and `tagrouter fit` choose them in a second selection stage with the
suite-fitted topics (docs/ROUTING-CHOICES.md), and the scorer
applies them.
"""
