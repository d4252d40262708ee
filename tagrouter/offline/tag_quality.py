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

from tagrouter.core.tagging import TOPIC_MIN_SCORE
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline.corpora import DEFAULT_CORPORA, HELD_OUT_FRACTION, Prompt, read_corpus, sample, split_held_out

MEASURED_SOURCES = ("arena-hard", "arena-hard-v2", "vicuna", "routerbench")
MAX_PER_LABEL = 100  # held-out prompts measured per label (RouterBench has ~400 per task)
TAGS_PER_LEVEL_SERVED = 2  # TAGROUTER_TAGS_PER_LEVEL's default


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
`tagrouter/offline/vocab_build.py` for the method); both read the corpora under `../shared/data/raw/`.

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
