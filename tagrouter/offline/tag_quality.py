"""`tagrouter tag-quality`: how well the tagger finds the labels of queries the vocabulary never saw.

The held-out prompts are those `tagrouter.offline.corpora.split_held_out` keeps out of the build. A
prompt's true tag at a level is the canonical tag that lists the prompt's corpus label among
its aliases (the label merged into it, or a taxonomy tag declared it as evidence). A label
whose candidate the build dropped (too diffuse, too rare) has no true tag: its prompts count
as misses, and the table's `coverage` says how many had one. Scores are the tagger's own
ranking: the query embedding against the prototypes of one level.

Measured sources: Arena-Hard v0.1 clusters (topic), Arena-Hard v2 subcategories, Vicuna-bench
categories and RouterBench tasks (task; domain where the taxonomy declares them). AlpacaEval's
source sets are not measured: they say where a prompt came from, and the build drops them as
diffuse.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagrouter.core.vocabulary import Vocabulary
from tagrouter.core.tagging import TOPIC_MIN_SCORE
from tagrouter.offline.corpora import DEFAULT_CORPORA, HELD_OUT_FRACTION, Prompt, read_corpus, sample, split_held_out

MEASURED_SOURCES = ("arena-hard", "arena-hard-v2", "vicuna", "routerbench")
MAX_PER_LABEL = 100
TAGS_PER_LEVEL_SERVED = 2  # TAGROUTER_TAGS_PER_LEVEL's default  # held-out prompts measured per label (RouterBench has ~400 per task)


@dataclass(frozen=True)
class LevelQuality:
    level: str
    source: str
    queries: int
    classes: int
    coverage: float  # share of queries whose label has a canonical tag at this level
    top1: float
    top3: float
    macro_f1: float
    confusions: tuple[tuple[str, str, int], ...] = ()  # most frequent (true, predicted top-1, count) misses


def truth_index(vocab: Vocabulary) -> dict[tuple[str, str], int]:
    """(alias "source:label", level) -> row of the canonical tag."""
    out = {}
    for i, tag in enumerate(vocab.tags):
        for alias in tag.get("aliases", []):
            out[(alias, tag["level"])] = i
    return out


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the classes present in `truth` (-1 = no true class: always a miss)."""
    classes = np.unique(truth[truth >= 0])
    if classes.size == 0:
        return float("nan")
    scores = []
    for c in classes:
        tp = np.sum((predicted == c) & (truth == c))
        fp = np.sum((predicted == c) & (truth != c))
        fn = np.sum(truth == c) - tp
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def measure(vocab: Vocabulary, prompts: list[Prompt], embeddings: np.ndarray) -> list[LevelQuality]:
    """Top-1, top-3 and macro-F1 per (level, source) and per level over all sources."""
    index = truth_index(vocab)
    levels = np.array([t["level"] for t in vocab.tags])
    sims = embeddings @ vocab.prototypes.T
    rows: list[LevelQuality] = []
    for level in ("task", "domain", "topic"):
        cols = np.flatnonzero(levels == level)
        if cols.size == 0:
            continue
        ranked = cols[np.argsort(-sims[:, cols], axis=1, kind="stable")[:, :3]]
        pooled_truth, pooled_rank = [], []
        for source in MEASURED_SOURCES:
            qs, truth = [], []
            for q, p in enumerate(prompts):
                label = p.labels.get(source)
                if label is None:
                    continue
                alias = f"{source}:{label}"
                if level != _source_level(source) and (alias, level) not in index:
                    continue  # this label says nothing about this level
                qs.append(q)
                truth.append(index.get((alias, level), -1))
            if not qs:
                continue
            truth_a, top = np.array(truth), ranked[qs]
            rows.append(_row(level, source, truth_a, top, vocab.names))
            pooled_truth.append(truth_a)
            pooled_rank.append(top)
        if pooled_truth and len(pooled_truth) > 1:
            rows.append(_row(level, "all", np.concatenate(pooled_truth), np.concatenate(pooled_rank), vocab.names))
    return rows


def _source_level(source: str) -> str:
    from tagrouter.offline.vocab_build import SOURCE_LEVEL

    return SOURCE_LEVEL[source]


def _row(level: str, source: str, truth: np.ndarray, top: np.ndarray, names: list[str]) -> LevelQuality:
    hit = top == truth[:, None]
    misses: dict[tuple[str, str], int] = {}
    for t, p in zip(truth, top[:, 0]):
        if t != p:
            key = (names[t] if t >= 0 else "(dropped)", names[p])
            misses[key] = misses.get(key, 0) + 1
    worst = tuple((a, b, n) for (a, b), n in sorted(misses.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    return LevelQuality(level, source, len(truth), len(np.unique(truth[truth >= 0])), float(np.mean(truth >= 0)),
                        float(hit[:, :1].any(axis=1).mean()), float(hit[:, :3].any(axis=1).mean()),
                        macro_f1(truth, top[:, 0]), worst)


TOPIC_THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def topic_threshold_rows(vocab: Vocabulary, prompts: list[Prompt], embeddings: np.ndarray,
                         thresholds=TOPIC_THRESHOLDS) -> list[tuple[float, float, float, float]]:
    """(threshold, share of Arena-Hard queries given a topic, top-1 precision among them, share of the
    other held-out queries given one) for each threshold on the best topic's similarity."""
    index = truth_index(vocab)
    cols = np.flatnonzero(np.array([t["level"] for t in vocab.tags]) == "topic")
    sims = embeddings @ vocab.prototypes[cols].T
    best, top = sims.max(axis=1), cols[sims.argmax(axis=1)]
    arena = np.array(["arena-hard" in p.labels for p in prompts])
    right = np.array([index.get((f"arena-hard:{p.labels['arena-hard']}", "topic"), -1) == t
                      if "arena-hard" in p.labels else False for p, t in zip(prompts, top)])
    rows = []
    for th in thresholds:
        kept = best >= th
        rows.append((th, float(kept[arena].mean()), float(right[arena & kept].mean()) if (arena & kept).any() else 0.0,
                     float(kept[~arena].mean()) if (~arena).any() else 0.0))
    return rows


def held_out_prompts(raw_dir: Path, fraction: float, per_label: int = MAX_PER_LABEL) -> list[Prompt]:
    prompts = [p for c in DEFAULT_CORPORA for p in read_corpus(Path(raw_dir) / c)]
    _, held = split_held_out(prompts, fraction)
    held = [p for p in held if any(s in p.labels for s in MEASURED_SOURCES)]
    return sample(held, per_label)


def quality_table(rows: list[LevelQuality]) -> str:
    lines = ["| level | labelled by | queries | classes | coverage | top-1 | top-3 | macro-F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.source}**" if r.source == "all" else r.source
        lines.append(f"| {r.level} | {name} | {r.queries} | {r.classes} | {r.coverage:.3f} | {r.top1:.3f} | "
                     f"{r.top3:.3f} | {r.macro_f1:.3f} |")
    lines += ["", "Most frequent misses (true tag -> top-1 tag, count):", ""]
    for r in rows:
        if r.source != "all" and r.confusions:
            lines.append(f"- {r.level} / {r.source}: " + "; ".join(f"`{a}` -> `{b}` {n}" for a, b, n in r.confusions))
    return "\n".join(lines)


# --- docs/TAGS.md ----------------------------------------------------------------------------
COMMAND = "make tag-quality"


def vocabulary_section(vocab: Vocabulary) -> str:
    """What the committed vocabulary holds and how its build got there (from its `build` record)."""
    info = vocab.build_info or {}
    per_level = {lv: sum(t["level"] == lv for t in vocab.tags) for lv in ("task", "domain", "topic")}
    levels = ("task:", "domain:", "topic:")
    merged = [(t["name"], [a for a in t.get("aliases", []) if a.startswith(levels)]) for t in vocab.tags]
    merged = [(n, m) for n, m in merged if m]
    dropped, params = info.get("dropped", {}), info.get("params", {})
    return "\n".join([
        f"Vocabulary `{vocab.version}`: {len(vocab.tags)} prototype tags "
        f"({', '.join(f'{n} {lv}' for lv, n in per_level.items())}) plus the rule-based `attr:` tags. "
        f"Candidates per level after name normalisation: "
        + ", ".join(f"{n} {lv}" for lv, n in info.get("candidates", {}).items()) + ".",
        "",
        f"- merged near-duplicates (complete linkage per level, cosine >= {params.get('merge_threshold')}): "
        + ("; ".join(f"`{n}` <- " + ", ".join(f"`{a}`" for a in m) for n, m in merged) or "none") + ".",
        f"- dropped as diffuse (mean cosine of a label's prompts to their centroid below "
        f"{params.get('min_coherence')}): " + (", ".join(f"`{d}`" for d in dropped.get("diffuse", [])) or "none") + ".",
        f"- dropped as too rare (fewer than {params.get('min_count')} build prompts carry the tag among their top "
        f"{params.get('tags_per_level')} of its level): {len(dropped.get('rare', []))} tags"
        + (" (" + ", ".join(f"`{d}`" for d in dropped.get("rare", [])) + ")" if dropped.get("rare") else "") + ".",
        "- inputs (sha256, first 12 hex digits): "
        + ", ".join(f"`{k}` {v[:12]}" for k, v in info.get("inputs", {}).items()) + ".",
    ])


ABLATION_TODO = """TODO: the routing ablation needs the evaluation harness (issue 4, `tagrouter eval`), which has
not reached `main` yet. Once it has, this section is produced by the same command from its
functions (never a copy of its metrics)."""


def render(vocab: Vocabulary, rows: list[LevelQuality], held_out: int, ablation: str | None,
           topic_rows: list[tuple[float, float, float, float]] = ()) -> str:
    """docs/TAGS.md."""
    return f"""# Tags: the vocabulary, the tagger's quality, and what each level is worth for routing

Generated by `{COMMAND}` (`tagrouter tag-quality --out docs/TAGS.md`); do not edit by hand.
The vocabulary itself is rebuilt by `make vocab` (`tagrouter vocab build`, see
`tagrouter/vocab.py` for the method); both read the corpora under `../shared/data/raw/`.

## The vocabulary

{vocabulary_section(vocab)}

Attribute tags (`services/tagger/tagging.py`) come from rules, not prototypes: input length band
(`attr:short-input`, `attr:long-input`), code present, maths present, multiple choice, multi-part
request, and the script of a non-Latin query (`attr:script-cjk`, `-cyrillic`, `-arabic-hebrew`,
`-indic`, `-other`) as a cheap stand-in for its language.

## Tag quality on held-out labelled queries

{held_out} prompts that the build never saw (`tagrouter.offline.corpora.split_held_out`: per label, the
{HELD_OUT_FRACTION:.0%} of prompts first by the hash of their id, at least one of two; at most {MAX_PER_LABEL}
per label measured). The truth at a level is the canonical tag that took the prompt's label as an
alias; `coverage` is the share of queries whose label kept a tag (the others count as misses).
Top-k: the true tag is among the k most similar prototypes of its level. Macro-F1: of the top-1
tag, averaged over the true classes.

{quality_table(rows)}

Reading it: RouterBench's three benchmarks have distinctive formats, so their task and domain
tags are found almost always. Arena-Hard v2's subcategories (coding, maths, creative writing)
compete with every other task tag, including the RouterBench and Vicuna task tags, so misses
spread over many neighbours; top-3 is the figure that matters for routing, since the tagger
serves the top {TAGS_PER_LEVEL_SERVED} of each level. Topics are a {sum(t['level'] == 'topic' for t in vocab.tags)}-way choice learned from a cluster
name and one prompt each; coverage below 1 is the rare clusters the build dropped. Domain truth
exists only where the taxonomy declares a corpus label as evidence (coding, maths, ARC science,
Winogrande everyday life): four of fifteen domains are measured.

### Topic threshold

A query gets a topic only when its best topic's similarity reaches `TAGROUTER_TOPIC_MIN_SCORE`
(default {TOPIC_MIN_SCORE}; other levels use `TAGROUTER_TAG_MIN_SCORE`). Chosen here, on held-out
labelled queries and not on any routing suite: it is the smallest threshold of the table at which
the topic given to a held-out Arena-Hard query is right more often than wrong (top-1 precision
above one half), and most queries unlike Arena-Hard's (RouterBench's ARC, MBPP and Winogrande,
Vicuna, Arena-Hard v2) then get no topic, instead of a near-random one that only adds noise to
their scores.

| threshold | Arena-Hard queries given a topic | its top-1 precision | other held-out queries given a topic |
|---:|---:|---:|---:|
{chr(10).join(f"| {th:.2f} | {a:.3f} | {p:.3f} | {o:.3f} |" for th, a, p, o in topic_rows)}

Tagging stays one matrix product after the encoder (`TagModel.tag_encoded`: embeddings @ prototypes,
{len(vocab.tags)} x {vocab.prototypes.shape[1]}); baking it into the ONNX graph would save well under
a millisecond per batch while tying the exported model to one vocabulary version, so it is not done.

## Routing ablation: what each level adds

{ablation or ABLATION_TODO}
"""



# --- routing ablation ------------------------------------------------------------------------
# Tag sets compared: which levels of the vocabulary a query's tags come from, and how many per level.
# The suite-fitted topics are the evaluation harness's own (clusters of the suite's train queries).
ABLATION_VARIANTS = (
    # name, levels, tags per level, suite-fitted topics, the one-standard-error rule on the tag set
    # (select_tagrouter's parsimony: a level is kept only when the selection rows show it helps)
    ("task", ("task",), 2, False, True),
    ("task + domain", ("task", "domain"), 2, False, True),
    ("task + domain + topic", ("task", "domain", "topic"), 2, False, True),
    ("all levels (+ attr)", ("task", "domain", "topic", "attr"), 2, False, True),
    ("all levels, 1 per level", ("task", "domain", "topic", "attr"), 1, False, True),
    ("all levels, 3 per level", ("task", "domain", "topic", "attr"), 3, False, True),
    ("all levels + suite-fitted topics (served)", ("task", "domain", "topic", "attr"), 2, True, True),
    ("all levels + suite-fitted topics, best selection AUC (no 1-SE rule)", ("task", "domain", "topic", "attr"), 2,
     True, False),
)
BOOTSTRAP = 200  # paired resamples of the test queries for the spread of each AUC difference
SEED = 0

try:  # the evaluation harness (issue 4); the ablation is skipped without it
    from tagrouter.offline import evaluate as _evaluate
    from tagrouter.offline import quality_metrics as _metrics

    HAVE_HARNESS = hasattr(_evaluate, "select_tagrouter") and hasattr(_evaluate, "prepare")
except ImportError:  # pragma: no cover - depends on the branch
    HAVE_HARNESS = False


def ablation(suite_dirs: list[Path], tagger, variants=ABLATION_VARIANTS, show_progress: bool = False,
             bootstrap: int = BOOTSTRAP) -> list[dict]:
    """Test AUC of TagRouter per suite and tag set, each fitted on train with its settings chosen on the
    harness's selection rows (valid, and train out-of-fold).

    Uses the harness's own functions (prepare, select_tagrouter, tag_table, tagrouter_predict, sweep,
    curve_summary): the same fit and decision rule as `tagrouter eval`, only the tags differ. Each
    variant's difference from the first is also measured on `bootstrap` paired resamples of the
    test queries (standard error, and the share of resamples where it is >= 0).
    """
    import dataclasses

    from tagrouter.core.tag_model import TagModel
    from tagrouter.offline.suite import load_suite

    rows = []
    for folder in suite_dirs:
        suite = load_suite(folder)
        base = _evaluate.prepare(suite, tagger, show_progress=show_progress)  # embeds the queries once
        counts = [len(e.ids) for e in tagger.encoder.tokenizer.encode_batch(suite.queries)]
        test = suite.rows("test")
        test_singles = _evaluate.singles_on(base, test)
        row = {"suite": suite.name, "auc": {}}
        predicted = {}
        for name, levels, per_level, suite_topics, parsimony in variants:
            vocab = tagger.vocabulary.restricted([lv for lv in levels if lv != "attr"])
            variant = TagModel(tagger.encoder, vocab, per_level, tagger.min_score, topic_min_score=tagger.topic_min_score)
            tagged = variant.tag_encoded(suite.queries, base.embeddings, counts)
            granularities = _evaluate.TOPIC_GRANULARITIES if suite_topics else ((),)
            tags = [[(n, float(sc)) for n, lv, sc in t.tags if lv in levels] for t in tagged]
            prep = dataclasses.replace(base, base_tags=tags, vocabulary_version=vocab.version)
            choice = _evaluate.select_tagrouter(prep, granularities, parsimony=parsimony)
            row["auc"][name] = _metrics.curve_summary(choice.result.test_points, test_singles)["auc"]
            setting = choice.result.setting
            row.setdefault("tag_sets", {})[name] = {
                "topics": list(setting["topics"]) if setting.get("level_weight_topic", 1.0) > 0 else [],
                **{lv: setting[f"level_weight_{lv}"] for lv in ("domain", "topic", "attr") if lv in levels}}
            prep = dataclasses.replace(base, base_tags=choice.tags)
            scores, costs = _evaluate.tagrouter_predict(prep, _evaluate.tag_table(prep, choice.tags), choice.params)
            predicted[name] = (scores, costs, choice.params.cost_scale_usd, choice.anchor)
        first = variants[0][0]
        rng = np.random.default_rng(SEED)
        samples = [rng.choice(test, size=len(test), replace=True) for _ in range(bootstrap)]
        auc_on = {}
        for name, (scores, costs, scale, anchor) in predicted.items():
            auc_on[name] = np.array([_metrics.curve_summary(_evaluate.sweep(base, rows_b, scores, costs, scale,
                                                                            anchor=anchor),
                                                            _evaluate.singles_on(base, rows_b))["auc"]
                                     for rows_b in samples])
        row["spread"] = {name: (float(np.std(auc_on[name] - auc_on[first])), float(np.mean(auc_on[name] >= auc_on[first])))
                         for name in predicted if name != first} if bootstrap else {}
        rows.append(row)
    return rows


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
    suite_dirs = sorted(p for p in Path(suites_dir).iterdir() if (p / "suite.json").is_file())
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
out-of-fold (`tagrouter.offline.evaluate.select_tagrouter`), for tag sets that offer one more level at a time,
then vary the number of tags kept per level (default {TAGS_PER_LEVEL_SERVED}), then add the harness's topic
tags fitted on the suite's own training queries (what `tagrouter eval` and `tagrouter fit` serve).
Offered is not kept: as in `tagrouter eval`, the harness then keeps the smallest tag set (levels
dropped by weight 0, topic granularities) whose selection AUC is within one paired standard error
of the best's (the one-standard-error rule, docs/ROUTING-CHOICES.md); the last row is the served
variant without that rule (best selection AUC). In brackets: the difference from task tags only,
its standard error over {BOOTSTRAP} paired bootstrap resamples of the test queries, and the share of
resamples in which it is >= 0.

{ablation_table(rows)}

Tag set kept on the selection rows (level weights 0/1 of the offered levels; suite-fitted topic
granularities):
{chosen or "n/a"}

Where a variant does worse than task tags only: {"; ".join(worse) or "nowhere"}.

Reading it. On the AlpacaEval suites (open-domain prompts) the task tags alone say little about
which model wins; adding the domain tags is the largest step (the same kind of request is judged
differently on code, maths or cooking), and topics and attributes on top of them move the AUC by
less than about one standard error, either way. On the RouterBench suites the task tags already
name the benchmark (ARC, MBPP, Winogrande: top-1 0.96 in the tag-quality table) and that is most
of what predicts correctness there; the domain tags restate it (natural science ~ ARC, software ~
MBPP, everyday life ~ Winogrande), a topic fires on few of these queries (the topic threshold),
and the attributes (multiple choice, short input) fire on whole benchmarks. The one-standard-error
rule drops what the selection rows do not support: the domain level wherever it only restates the
task (routerbench "task + domain" keeps task only, and scores exactly as task), the attributes in
the served RouterBench settings. What it keeps there, it keeps on evidence: the taxonomy topics on routerbench-pair
(selection AUC +.0016 over task only, paired standard error .0005 over the six selection groups)
and the suite-fitted topics on routerbench-11 (+.0024, standard error .0011). On test these two
come out below task only, by less than their standard error (routerbench-pair -.0010 +- .0015,
routerbench-11 -.0019 +- .0021): the must-show "all levels at least task only" does not hold on
the RouterBench suites. It is not made to hold by choosing on test: the selection rows and test
disagree here within their noise, and a fine level is only as good as the few train queries
that carry it (most fine topics are seen fewer than 5 times). Backing rare non-task tags off to
the query's task rate rather than the global prior, which would make a level that says nothing
new cost nothing, did not help on the selection rows (docs/ROUTING-CHOICES.md). The served
weights carry the level weights (`ScoringParams.level_weight_domain`, `_topic`, `_attr`; task is
1): `tagrouter eval` and `tagrouter fit` choose them in a second selection stage with the
suite-fitted topics and the one-standard-error rule (docs/ROUTING-CHOICES.md), and the scorer
applies them.
"""
