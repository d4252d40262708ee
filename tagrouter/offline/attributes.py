"""The `attr:` tags' ablation and precision (docs/ATTRIBUTES.md): which candidate attributes the tagger keeps.

    python -m tagrouter.offline.attributes --suites ../shared/data/suites --raw ../shared/data/raw \
        --out docs/ATTRIBUTES.md

Per suite, TagRouter is chosen as `tagrouter eval` chooses it, with every candidate attribute of
`tagrouter.core.attributes` (`CANDIDATE_ATTRIBUTES`); at that setting, with the attribute level
weighted 1 so that the attributes take part, the selection AUC (train out-of-fold and valid, the
rows every setting is chosen on; never test) is measured with all candidates and without each one.
A candidate added by issue 15 is kept (`ATTRIBUTE_TAGS`) when removing it lowers the selection AUC
by more than `SUPPORT` on average over the suites; one that fires on no query of any suite has no
support and is not kept. The attributes that predate it are reported the same way and kept (old weights use them).
Precision: on the labelled corpora of ../shared/data/raw, the share of prompts carrying the
attribute whose corpus label is the attribute's concept (coding, maths, multiple choice), among
the corpora that label that concept.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from tagrouter.core.attributes import CANDIDATE_ATTRIBUTES, attribute_tags
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline import selection
from tagrouter.offline.prepare import Prepared, prepare, singles_on
from tagrouter.offline.routers.base import Prediction
from tagrouter.offline.routers.tag_router import TagRouter, parse_setting, score_tagged, tag_table, with_topics

# The attributes before issue 15 (kept whatever the ablation says: served weights carry them).
EARLIER = ("attr:short-input", "attr:long-input", "attr:contains-code", "attr:contains-math", "attr:multiple-choice",
           "attr:multi-part", "attr:non-latin-script", "attr:script-cjk", "attr:script-cyrillic",
           "attr:script-arabic-hebrew", "attr:script-indic", "attr:script-other")
SUPPORT = 1e-4  # the mean selection AUC a new attribute must add (less is a change of a query or two)
CODE = {"arena-hard-v2": {"coding"}, "vicuna": {"coding"}, "routerbench": {"mbpp"}}
MATHS = {"arena-hard-v2": {"math"}, "vicuna": {"math"}}
CHOICE = {"routerbench": {"arc-challenge", "winogrande"}}
# attribute -> the corpus labels that make a prompt carrying it a true positive
CONCEPTS = {"attr:contains-code": CODE, "attr:code-python": CODE, "attr:code-javascript": CODE, "attr:code-sql": CODE,
            "attr:code-c-family": CODE, "attr:code-shell": CODE, "attr:contains-math": MATHS, "attr:equation": MATHS,
            "attr:contains-numbers": MATHS, "attr:multiple-choice": CHOICE}


def with_attributes(prep: Prepared, token_counts: list[int], names) -> list[list[tuple[str, float]]]:
    """Every query's tagger tags with its `attr:` tags replaced by those of `names`."""
    return [[t for t in tags if not t[0].startswith("attr:")] + [(a, 1.0) for a in attribute_tags(text, n, names)]
            for tags, text, n in zip(prep.base_tags, prep.suite.queries, token_counts)]


def selection_auc(prep: Prepared, tags, setting: dict, folds: list[np.ndarray]) -> float:
    """TagRouter's AUC on the selection rows at `setting` with these tags (out-of-fold on train)."""
    _, params = parse_setting(setting)
    train = prep.suite.rows("train")

    def predict(rows_fit: np.ndarray, rows: np.ndarray) -> Prediction:
        table = tag_table(prep, tags, rows_fit)
        s, e, p = score_tagged(table.counts[1:], table.counts[0], table.confidence[rows][:, 1:], table.names[1:], params)
        return Prediction(s, e, p)

    whole = predict(train, np.arange(len(prep.suite.queries)))
    for part in folds:
        held = predict(np.setdiff1d(train, part), part)
        whole.scores[part], whole.output_tokens[part] = held.scores, held.output_tokens
    _, scores, est, anchor = selection.candidate(prep, setting, whole)
    rows = selection.selection_rows(prep, folds)
    singles = singles_on(prep, rows)
    pts = selection.sweep(prep, rows, scores, est, setting["cost_scale_usd"], anchor)
    return float(metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]),
                                       singles.cost[singles.cheapest], singles.cost[singles.priciest]))


def ablate_suite(prep: Prepared, token_counts: list[int]) -> dict:
    everything = with_attributes(prep, token_counts, CANDIDATE_ATTRIBUTES)
    full = dataclasses.replace(prep, base_tags=everything)
    router = TagRouter()
    folds = selection.cv_folds(full)
    chosen = router.choose(full, folds)
    setting = {**chosen.result.setting, "level_weight_attr": 1.0}
    topics = with_topics([[] for _ in prep.base_tags], chosen.topics, prep.embeddings)

    def auc(names) -> float:
        tags = [b + t for b, t in zip(with_attributes(prep, token_counts, names), topics)]
        return selection_auc(full, tags, setting, folds)

    base = auc(CANDIDATE_ATTRIBUTES)
    fired = {a: float(np.mean([a in {t for t, _ in q} for q in everything])) for a in CANDIDATE_ATTRIBUTES}
    return {"suite": prep.suite.name, "setting": chosen.result.setting, "all": base, "earlier_only": auc(EARLIER),
            "fires": fired,
            "removed": {a: base - auc([c for c in CANDIDATE_ATTRIBUTES if c != a]) for a in CANDIDATE_ATTRIBUTES}}


def precision(raw: Path) -> dict[str, dict]:
    """Per attribute with a labelled concept: the share of prompts carrying it that are of the concept."""
    from tagrouter.offline.corpora import DEFAULT_CORPORA, read_corpus

    prompts = [p for rel in DEFAULT_CORPORA if (raw / rel).is_file() for p in read_corpus(raw / rel)]
    out = {}
    for name, concept in CONCEPTS.items():
        scope = [p for p in prompts if set(p.labels) & set(concept)]
        fired = [p for p in scope if attribute_tags(p.text, 0, [name])]
        true = [p for p in fired if any(p.labels.get(src) in labels for src, labels in concept.items())]
        out[name] = {"fired": len(fired), "precision": len(true) / len(fired) if fired else None,
                     "scope": len(scope), "positives": sum(any(p.labels.get(s) in lab for s, lab in concept.items())
                                                           for p in scope)}
    return out


def kept(rows: list[dict]) -> list[str]:
    """The candidates the ablation supports: the earlier ones, and new ones whose removal lowers
    the mean selection AUC over the suites by more than `SUPPORT` (firing somewhere)."""
    out = []
    for a in CANDIDATE_ATTRIBUTES:
        fires = max(r["fires"][a] for r in rows) > 0
        if a in EARLIER or (fires and np.mean([r["removed"][a] for r in rows]) > SUPPORT):
            out.append(a)
    return out


def markdown(rows: list[dict], prec: dict, command: str) -> str:
    keep = kept(rows)
    suites = [r["suite"] for r in rows]
    lines = ["# Attribute tags (`attr:`): precision and ablation", "",
             f"Generated by `{command}` (tagrouter/offline/attributes.py): do not edit by hand.", "",
             *[line.strip() for line in __doc__.split("\n\n", 2)[2].splitlines()], "",
             "Selection AUC with every candidate: " + "; ".join(f"{r['suite']} {r['all']:.4f}" for r in rows)
             + ". With the earlier attributes only: "
             + "; ".join(f"{r['suite']} {r['earlier_only']:.4f}" for r in rows) + ".", "",
             "\"removed\": the selection AUC with every candidate minus without this one (> 0: it helps).", "",
             "| attribute | kept | precision on labelled prompts (carrying it / in scope) | fires on (share of queries) "
             + " / ".join(suites) + " | removed: " + " / ".join(suites) + " | mean removed |",
             "|---|---|---|---|---|---|"]
    for a in CANDIDATE_ATTRIBUTES:
        p = prec.get(a)
        ptxt = f"{p['precision']:.2f} ({p['fired']} / {p['scope']})" if p and p["precision"] is not None else \
            ("none fired" if p else "no labels")
        origin = "" if a in EARLIER else " (new)"
        lines.append(f"| `{a}`{origin} | {'yes' if a in keep else 'no'} | {ptxt} | "
                     + " / ".join(f"{r['fires'][a]:.1%}" for r in rows) + " | "
                     + " / ".join(f"{r['removed'][a]:+.4f}" for r in rows)
                     + f" | {np.mean([r['removed'][a] for r in rows]):+.4f} |")
    lines += ["", "Kept (`tagrouter.core.attributes.ATTRIBUTE_TAGS` must list exactly these): "
              + ", ".join(f"`{a}`" for a in keep) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True, help="the labelled corpora (../shared/data/raw)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from tagrouter.offline.prepare import configured_tagger
    from tagrouter.offline.suite import load_suite, suite_folders

    tagger, rows = configured_tagger(), []
    for folder in suite_folders(args.suites):
        prep = prepare(load_suite(folder), tagger, show_progress=False)
        counts = [len(e.ids) for e in tagger.encoder.tokenizer.encode_batch(prep.suite.queries)]
        rows.append(ablate_suite(prep, counts))
        print(f"{rows[-1]['suite']}: all {rows[-1]['all']:.4f}", file=sys.stderr, flush=True)
    command = f"python -m tagrouter.offline.attributes --suites {args.suites} --raw {args.raw} --out {args.out}"
    prec = precision(args.raw)
    args.out.write_text(markdown(rows, prec, command))
    args.out.with_suffix(".json").write_text(json.dumps({"suites": rows, "precision": prec, "kept": kept(rows)},
                                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
