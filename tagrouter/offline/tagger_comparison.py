"""Routing with the trained tagger against routing with the prototype tagger it replaced, per suite.

    python -m tagrouter.offline.tagger_comparison --baseline-vocab build/vocab-prototype-944337c

For each suite TagRouter is chosen as `tagrouter eval` chooses it (`routers.TagRouter.select`:
settings on train out-of-fold and valid, suite-fitted topics), once
with each tagger's tags; only the tags differ. The two test routings are compared by the paired
bootstrap of `tagrouter eval` (`offline.paired`: the same resamples of the test queries for both):
the trained tagger is *behind* when the whole 95% interval of its AUC minus the prototype tagger's
is below 0.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tagrouter.offline import paired
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.prepare import configured_tagger, prepare, singles_on
from tagrouter.offline.routers.tag_router import TagRouter
from tagrouter.offline.selection import cv_folds

BASELINE = "prototypes"


def compare_suite(folder: Path, tagger, baseline) -> dict:
    """Test AUC of TagRouter with each tagger on one suite, and the paired interval of their difference."""
    from tagrouter.offline.suite import load_suite

    suite = load_suite(folder)
    test = suite.rows("test")
    out, choices = {"suite": suite.name}, {}
    for name, model in ((paired.SUBJECT, tagger), (BASELINE, baseline)):
        prep = prepare(suite, model, show_progress=False)
        result = TagRouter().select(prep, cv_folds(prep))
        out[name] = metrics.curve_summary(result.test_points, singles_on(prep, test))["auc"]
        choices[name] = result.test.choices
    diffs = paired.differences(choices, prep.accept[test], suite.costs[test], paired.resample_counts(len(test)))
    out["paired"] = paired.summary(out[paired.SUBJECT] - out[BASELINE], diffs[BASELINE])
    return out


def prototype_tagger(tagger, vocabulary):
    """The prototype tagger over `vocabulary`: nearest prototypes at the served cosine thresholds, no heads."""
    from tagrouter.core.tag_model import TagModel

    return TagModel(tagger.encoder, vocabulary, tagger.per_level, tagger.min_score, tagger.client_tag_min_similarity,
                    tagger.topic_min_score, heads=None)


def compare(suite_dirs: list[Path], baseline_vocab: Path, tagger=None) -> list[dict]:
    """Each suite's comparison of `tagger` (default: the configured one with its trained heads) with
    the prototype tagger over `baseline_vocab`."""
    from tagrouter.core.vocabulary import Vocabulary

    tagger = configured_tagger(use_heads=True) if tagger is None else tagger
    if tagger.heads is None:
        raise ValueError("the comparison needs the tagger's trained heads: run `make tagger-heads`")
    baseline = prototype_tagger(tagger, Vocabulary.load(baseline_vocab))
    return [compare_suite(d, tagger, baseline) for d in suite_dirs]


def table(rows: list[dict]) -> str:
    lines = ["| suite | trained heads | prototype tagger | heads - prototypes | 95% interval | call |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        p = r["paired"]
        lines.append(f"| {r['suite']} | {r[paired.SUBJECT]:.4f} | {r[BASELINE]:.4f} | {p['auc_difference']:+.4f} | "
                     f"[{p['interval'][0]:+.4f}, {p['interval'][1]:+.4f}] | {p['call']} |")
    return "\n".join(lines)


def section(suites_dir: Path, baseline_vocab: Path, tagger=None) -> str:
    """docs/TAGS.md's comparison: the table and how it was made (`tagger`: the one with heads, as `compare`)."""
    from tagrouter.offline.suite import suite_folders

    rows = compare(suite_folders(suites_dir), baseline_vocab, tagger)
    behind = [r["suite"] for r in rows if r["paired"]["call"] == "behind"]
    return f"""Test AUC (ROUTING.md, section 3) of TagRouter chosen as `tagrouter eval` chooses it (settings on
train out-of-fold and valid, never test), once with the trained tagger's tags and once with the
prototype tagger's (vocabulary `{baseline_vocab.name}`); the difference with its 95% interval over
{paired.RESAMPLES} paired bootstrap resamples of the test queries (`tagrouter/offline/paired.py`, as
`tagrouter eval` reports TagRouter against the baselines). Reproduce with `python -m
tagrouter.offline.tagger_comparison --baseline-vocab {baseline_vocab}`.

{table(rows)}

Behind by the paired interval on: {", ".join(behind) or "no suite"}."""


def main() -> None:
    from tagrouter.offline import paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, default=paths.suites_dir())
    parser.add_argument("--baseline-vocab", type=Path, required=True)
    args = parser.parse_args()
    from tagrouter.offline.suite import suite_folders

    print(table(compare(suite_folders(args.suites), args.baseline_vocab)))


if __name__ == "__main__":
    main()
