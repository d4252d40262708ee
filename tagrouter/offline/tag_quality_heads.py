"""docs/TAGS.md's served-tag figures: the trained heads against the prototype tagger they replace.

Each tagger is judged on its own vocabulary: a held-out prompt's true tag at a level is the tag of
that vocabulary which took the prompt's corpus label as an alias (`tag_quality.truth_index`).
What a tagger serves at a level: the heads, their top tag when its calibrated probability reaches
the level's threshold (`TagModel`); the prototype tagger, its top `per_level` tags whose cosine
reaches its minimum score. Precision: share of served tags that are the true one; recall: share
of queries whose true tag is served; coverage: share of queries given a tag at that level.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline.tag_quality import MEASURED_SOURCES, _source_level, truth_index
from tagrouter.offline.train_tagger import reliability

LEVELS = ("task", "domain", "topic")


@dataclass(frozen=True)
class Served:
    """One level of one tagger on the held-out prompts."""

    names: list[str]  # column c is names[c]
    scores: np.ndarray  # [n, C] probability or cosine
    served: np.ndarray  # [n, C] bool: the tags the tagger gives


def heads_levels(heads: TaggerHeads, features: np.ndarray) -> dict[str, Served]:
    out = {}
    for level, probs in heads.probabilities(features).items():
        h = heads.heads[level]
        top = probs.argmax(axis=1)
        served = np.zeros_like(probs, dtype=bool)
        served[np.arange(len(probs)), top] = probs[np.arange(len(probs)), top] >= h.threshold
        out[level] = Served(h.names, probs, served)
    return out


def prototype_levels(vocab: Vocabulary, embeddings: np.ndarray, per_level: int, min_score: dict[str, float]) -> dict:
    out = {}
    for level in LEVELS:
        cols = np.flatnonzero(np.array([t["level"] == level for t in vocab.tags]))
        sims = embeddings @ vocab.prototypes[cols].T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :per_level]
        served = np.zeros_like(sims, dtype=bool)
        np.put_along_axis(served, order, True, axis=1)
        out[level] = Served([vocab.tags[i]["name"] for i in cols], sims, served & (sims >= min_score[level]))
    return out


def _truth(vocab: Vocabulary, prompts, level: str, source: str) -> tuple[np.ndarray, list[str | None]]:
    """Rows of the prompts labelled by `source` that say something at `level`, and their true tag names."""
    index = truth_index(vocab)
    rows, names = [], []
    for q, p in enumerate(prompts):
        label = p.labels.get(source)
        if label is None:
            continue
        alias = (f"{source}:{label}", level)
        if level != _source_level(source) and alias not in index:
            continue
        rows.append(q)
        names.append(vocab.tags[index[alias]]["name"] if alias in index else None)
    return np.array(rows, dtype=np.int64), names


def level_rows(vocab: Vocabulary, levels: dict[str, Served], prompts) -> list[dict]:
    """Per level and source (and all sources pooled): served precision, recall, coverage, top-1/3."""
    out = []
    for level, s in levels.items():
        col = {n: c for c, n in enumerate(s.names)}
        pooled = []
        for source in MEASURED_SOURCES:
            rows, names = _truth(vocab, prompts, level, source)
            if rows.size:
                truth = np.array([col.get(n, -1) if n else -1 for n in names])
                pooled.append((rows, truth))
                out.append(_row(level, source, s, rows, truth))
        if len(pooled) > 1:
            out.append(_row(level, "all", s, np.concatenate([r for r, _ in pooled]),
                            np.concatenate([t for _, t in pooled])))
    return out


def _row(level: str, source: str, s: Served, rows: np.ndarray, truth: np.ndarray) -> dict:
    scores, served = s.scores[rows], s.served[rows]
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    hit_served = served[np.arange(len(rows)), np.maximum(truth, 0)] & (truth >= 0)
    n_served = served.sum()
    return {"level": level, "source": source, "queries": int(len(rows)),
            "classes": int(len(np.unique(truth[truth >= 0]))),
            "coverage": float(served.any(axis=1).mean()),
            "precision": float(hit_served.sum() / n_served) if n_served else float("nan"),
            "recall": float(hit_served.mean()),
            "top1": float((ranked[:, 0] == truth).mean()), "top3": float((ranked == truth[:, None]).any(axis=1).mean())}


def other_coverage(levels: dict[str, Served], prompts, level: str = "topic", source: str = "arena-hard") -> float:
    """Share of the held-out prompts not labelled by `source` given a tag at `level`."""
    other = np.array([source not in p.labels for p in prompts])
    return float(levels[level].served[other].any(axis=1).mean()) if other.any() else float("nan")


def reliability_rows(vocab: Vocabulary, levels: dict[str, Served], prompts) -> dict[str, list[dict]]:
    """Per level, over every measured source: the top tag's score binned against how often it is right."""
    out = {}
    for level, s in levels.items():
        col = {n: c for c, n in enumerate(s.names)}
        conf, right = [], []
        for source in MEASURED_SOURCES:
            rows, names = _truth(vocab, prompts, level, source)
            if rows.size:
                truth = np.array([col.get(n, -1) if n else -1 for n in names])
                conf.append(s.scores[rows].max(axis=1))
                right.append(s.scores[rows].argmax(axis=1) == truth)
        if conf:
            out[level] = reliability(np.concatenate(conf), np.concatenate(right))
    return out


def _served(precision, fmt: str = "{}") -> str:
    """A precision, or why there is none (a level that served no query: NaN or null)."""
    return "none served" if precision is None or precision != precision else fmt.format(precision)


def comparison_table(new: list[dict], old: list[dict]) -> str:
    """The heads' row beside the prototype tagger's for each (level, source)."""
    old_by = {(r["level"], r["source"]): r for r in old}
    lines = ["| level | labelled by | queries | tagger | coverage | precision | recall | top-1 | top-3 |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in new:
        for who, row in (("heads", r), ("prototypes", old_by.get((r["level"], r["source"])))):
            if row is None:
                continue
            src = f"**{r['source']}**" if r["source"] == "all" else r["source"]
            precision = _served(row["precision"], "{:.3f}")
            lines.append(f"| {r['level']} | {src} | {row['queries']} | {who} | {row['coverage']:.3f} | "
                         f"{precision} | {row['recall']:.3f} | {row['top1']:.3f} | {row['top3']:.3f} |")
    return "\n".join(lines)


def reliability_table(new: dict[str, list[dict]]) -> str:
    lines = ["| level | top tag's probability | queries | mean probability | share right |", "|---|---|---:|---:|---:|"]
    for level, bins in new.items():
        for b in bins:
            lines.append(f"| {level} | [{b['bin'][0]:.2f}, {b['bin'][1]:.2f}) | {b['queries']} | {b['confidence']:.3f} | "
                         f"{b['right']:.3f} |")
    return "\n".join(lines)


def features_table(record: dict) -> str:
    """Per level and feature set (at its best penalty), the out-of-fold figures the training chose by."""
    lines = ["| level | heads read | penalty | out-of-fold log-loss | out-of-fold top-1 | Arena-Hard v2 | chosen |",
             "|---|---|---:|---:|---:|---:|---|"]
    for level, r in record.items():
        best: dict[str, dict] = {}
        for t in r.get("tried", []):
            name = t.get("features", "last layer")
            if name not in best or t["log_loss"] < best[name]["log_loss"]:
                best[name] = t
        for name, t in best.items():
            ah = t.get("top1_by_source", {}).get("arena-hard-v2")
            lines.append(f"| {level} | {name} | {t['penalty']} | {t['log_loss']:.4f} | {t.get('top1', float('nan')):.4f} | "
                         f"{'' if ah is None else f'{ah:.4f}'} | {'yes' if name == r.get('features') else ''} |")
    return "\n".join(lines)


def quality_section(vocab: Vocabulary, heads: TaggerHeads, baseline: Vocabulary, prompts, embeddings: np.ndarray,
                    features: np.ndarray, per_level: int, min_score: float, topic_min_score: float,
                    examples: str = "", stability: str = "", shared_features: np.ndarray | None = None) -> str:
    """The held-out section of docs/TAGS.md: both taggers per level and source, the thresholds, the
    calibration (the heads read the prompts' `features`, the prototypes their `embeddings`), and the
    heads' figures from `shared_features` (the prompts encoded in shared calls) beside them."""
    new_levels = heads_levels(heads, features)
    old_levels = prototype_levels(baseline, embeddings, per_level,
                                  {"task": min_score, "domain": min_score, "topic": max(min_score, topic_min_score)})
    new, old = level_rows(vocab, new_levels, prompts), level_rows(baseline, old_levels, prompts)
    record = heads.record.get("levels", {})
    params = heads.record.get("params", {})
    oof = {lv: record.get(lv, {}).get("out_of_fold", {}) for lv in heads.heads}
    features = ", ".join(f"{lv}: {record.get(lv, {}).get('features', 'all layers')}" for lv in heads.heads)
    # how often the tags just below the lowest threshold allowed were right out of fold (its reliability bin)
    below = [(lv, b) for lv in heads.heads if lv != "topic"
             for b in record.get(lv, {}).get("out_of_fold", {}).get("reliability", [])
             if b["bin"][1] == params.get("min_threshold")]
    below_half = (f"[{below[0][1]['bin'][0]}, {below[0][1]['bin'][1]}) were right in "
                  + ", ".join(f"{b['right']:.0%} of {b['queries']} ({lv})" for lv, b in below)) if below else \
        "below it were not measured"
    thresholds = "\n".join(
        f"| {lv} | {h.threshold:.2f} | {record.get(lv, {}).get('classes_with_prompts', '')} of {len(h.names)} | "
        f"{record.get(lv, {}).get('temperature', '')} | {_served(oof[lv].get('precision'))} | "
        f"{oof[lv].get('coverage', '')} |" for lv, h in heads.heads.items())
    return f"""The trained tagger (`heads`; in the graph, not yet served by default: see below) against the
prototype tagger (`prototypes`: the
vocabulary of commit 944337c, nearest prototypes by cosine, the top {per_level} of each level at cosine
>= {min_score}, topics >= {max(min_score, topic_min_score)}). Each is judged on its own vocabulary (the
prototype tagger's RouterBench task tags were the benchmarks' names). Precision: share of the served
tags that are the true one; recall: share of queries whose true tag is served; coverage: share of
queries given a tag at that level; top-1/top-3: the true tag is among the 1 or 3 highest-scored.

{comparison_table(new, old)}

Held-out queries outside Arena-Hard v0.1 given a topic: heads {other_coverage(new_levels, prompts):.3f},
prototypes {other_coverage(old_levels, prompts):.3f}.

The heads read the graph's features, every layer of the encoder pooled
(`tagrouter/core/tag_heads.py`); the training chose per level, out of fold, between those and the
last layer alone ({features}). Not served by default yet (`TAGROUTER_TAGGER_HEADS=true` serves
them, for the tagger and the scorer; `make run HEADS=true`): the starter weights fitted on the heads'
tags (`make weights-heads`, tagrouter/data/starter_weights_heads.json, the scorer's default with the
heads) recommend a point at 99.1% of the priciest model's cost on ae2-multi's selection rows, and
there all five sample queries of `make run` go to that model (`tests/integration/test_operating_points.py`
would fail; at `--max-cost-pct 90` the Rust task alone goes elsewhere). On ae2-multi's test split
(`TAGROUTER_TAGGER_HEADS=true tagrouter operating-points --suite ../shared/data/suites/ae2-multi --max-cost-pct 30 50 80`)
their default costs 99.1% with accept rate .725 (the best single model's), and caps of 30, 50 and 80
land at 33.7, 51.4 and 80.7% with accept rates .331, .450 and .588 (the prototype starter weights,
README: 98.3% and .706; 23.9, 47.9 and 79.8% with .263, .425 and .613). On ae2-multi the
strongest model wins on every kind of work: with the prototype tagger the one sample query that
goes elsewhere by default is the Rust task, sent
to a cheaper model because it is tagged `task:classification-extraction`, a wrong tag. A default
that visibly routes with right tags needs a starter suite or a recommended-point rule where cheaper
models win some kind of work (issue 14's choice); and every figure generated with the served tagger
(RESULTS, PACING, the routing ablation below) would move with it. The served tagger is the
prototype tagger over the same taxonomy-named vocabulary until then.
How the heads tag (`tagrouter/core/tag_model.py`, `use_heads=True`): a level's tag is its head's top tag when its
calibrated probability reaches the level's threshold, else the level gives none and the router
backs off to the coarser tags and the prior. Thresholds and temperatures were chosen on the build
side only (`tagrouter/offline/train_tagger.py`: {params.get('folds')}-fold out-of-fold probabilities of the
build prompts; the smallest threshold, from {params.get('min_threshold', 0.3)}, at which the served tag is right at least
{params.get('precision_floor')} of the time there by a one-sided 90% Wilson lower bound, so a level
that serves few build prompts at a threshold needs more there; below one half a calibrated
probability says the tag is more likely wrong than right; out of fold, the tags at
{below_half}):

| level | threshold | classes with labelled prompts | temperature | out-of-fold precision | out-of-fold coverage |
|---|---:|---|---:|---:|---:|
{thresholds}

What the heads read, as the training chose it (`heads.json`; build side, {params.get('folds')} folds, each
feature set at its best penalty by out-of-fold log-loss; no held-out prompt is seen):

{features_table(record)}

Reliability of the heads' probabilities on the held-out queries (the top tag's probability, binned,
against the share of those queries where it is the true tag; all measured sources of a level pooled):

{reliability_table(reliability_rows(vocab, new_levels, prompts))}

{stability}{shared_figures(vocab, heads, prompts, shared_features)}

### Queries like no labelled corpus

The labelled corpora are benchmarks; users ask anything. How the two taggers tag a few such queries
(the issue's three first, and the first sample query of `make run`); no level is measured on these,
and the heads' calibration holds only for queries like the labelled ones:

{examples}"""


# The three queries and a few everyday ones: how each tagger tags a query like no benchmark.
EXAMPLES = (
    "What is the recommended dosage of ibuprofen for a child with fever?",
    "Write a Python function that reverses a linked list",
    "Compose a sonnet about autumn rain in the style of Shakespeare",
    "How do I get a refund for a cancelled flight?",
    "Who won the 2018 football world cup?",
    "What's the best way to learn guitar as an adult?",
    "hi",
)


def examples_table(tagger, baseline, texts=EXAMPLES) -> str:
    """Each text's task, domain and topic tags from the trained tagger and from the prototype tagger."""
    def cell(tagged) -> str:
        tags = [f"`{n}` {s:.2f}" for n, lv, s in tagged.tags if lv != "attr"]
        return ", ".join(tags) or "(none)"

    lines = ["| query | trained heads (probability) | prototype tagger (cosine) |", "|---|---|---|"]
    for text in texts:  # each alone, as `tagrouter tag` tags it: a batch moves the int8 activations
        lines.append(f"| {text} | {cell(tagger.tag([text])[0])} | {cell(baseline.tag([text])[0])} |")
    return "\n".join(lines)


def shared_figures(vocab: Vocabulary, heads: TaggerHeads, prompts, shared_features: np.ndarray | None) -> str:
    """One line: the heads' top-1 and coverage per level on Arena-Hard v2 when the prompts were encoded in
    shared calls (64 of similar length, as `Encoder.embed_with_features` batches), beside the figures above."""
    if shared_features is None:
        return ""
    rows = [r for r in level_rows(vocab, heads_levels(heads, shared_features), prompts)
            if r["source"] == "arena-hard-v2"]
    if not rows:
        return ""
    figures = "; ".join(f"{r['level']} top-1 {r['top1']:.3f}, coverage {r['coverage']:.3f}" for r in rows)
    return ("\n\n" + textwrap.fill("The same held-out prompts encoded in shared calls of 64 of similar length "
                                    "(as this report encoded them before it encoded each alone), the heads on "
                                    f"Arena-Hard v2: {figures}.", 100))


STABILITY_BATCH = 16  # the size of a busy tagger's micro-batch


def batch_stability(tagger, texts: list[str], batch: int = STABILITY_BATCH, seed: int = 0) -> str:
    """How many texts get other task or domain tags from the heads in a batch of `batch` random others
    than alone: the encoder's int8 activations are quantised with one scale per call, so what else is in
    a micro-batch moves a query's probabilities."""
    def levels(tagged) -> tuple[dict, dict]:
        head = [(lv, n, p) for n, lv, p in tagged.tags if lv in ("task", "domain")]
        return {lv: n for lv, n, _ in head}, {lv: p for lv, _, p in head}

    alone = [levels(tagger.tag([t])[0]) for t in texts]
    order = np.random.default_rng(seed).permutation(len(texts))
    together: list = [None] * len(texts)
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        for row, tagged in zip(rows, tagger.tag([texts[r] for r in rows])):
            together[row] = levels(tagged)
    differ = sum(a[0] != b[0] for a, b in zip(alone, together))
    shifts = [abs(a[1][lv] - b[1][lv]) for a, b in zip(alone, together) for lv in a[1].keys() & b[1].keys()]
    p99 = np.percentile(shifts, 99) if shifts else 0.0
    return textwrap.fill(
            f"Tagged alone and then in random batches of {batch}, {differ} of {len(texts)} held-out queries "
            f"({differ / len(texts):.1%}) get another task or domain tag (or none); a served tag's probability "
            f"moves by up to {max(shifts, default=0):.3f} (99th percentile {p99:.3f}). The encoder's "
            "int8 activations are quantised with one scale per onnxruntime call, and a busy tagger puts "
            "concurrent queries in one call: under load a query near its level's threshold can get a tag or "
            "not by what arrived with it (the tag cache then keeps the first answer). At concurrency 1 a query "
            "has its call to itself. (`batch_stability` in `tagrouter/offline/tag_quality_heads.py`.)", 100)
