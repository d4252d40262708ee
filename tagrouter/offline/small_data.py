"""Small data without new data: every suite's train split cut to a few hundred queries, every router re-run.

    python -m tagrouter.offline.small_data --suites ../shared/data/suites --sizes 150 300 --seeds 5 \
        --out docs/SMALL-DATA.md

For each suite, each size N and each seed s the train split is cut to N queries drawn at random
(`suite.with_train_size`, as `tagrouter eval --train-size N --seed s`); valid and test stay as they
are. Every router is chosen on the selection rows as in `tagrouter eval`, and scored on test. The
table gives each router's test AUC averaged over the seeds and TagRouter's difference from each
other router with a 95% paired bootstrap interval: the same 1,000 resamples of the test queries
for every router and every seed (test is the same for every seed), the per-resample differences
averaged over the seeds, so the interval is that of the mean difference over test queries.
The numbers go to `--out` (Markdown) and the same name with `.json`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from tagrouter.offline import evaluate, paired
from tagrouter.offline.prepare import Prepared, prepare, singles_on
from tagrouter.offline.report import comparison, router_doc
from tagrouter.offline.routers import TagRouter, default_routers
from tagrouter.offline.suite import load_suite, suite_folders, with_train_size

BASELINES = ("knn", "mf", "forc", "random")
CAUTIOUS = "cautious"  # TagRouter(caution=True), measured beside the served TagRouter with --cautious


def one_run(prep: Prepared, counts: np.ndarray, routers=None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every router's test AUC on one (sub-sampled) prepared suite, and TagRouter's per-resample differences."""
    results, _ = evaluate.select_all(prep, show_progress=False, routers=routers)
    return scored(prep, results, counts)


def aucs_on_test(prep: Prepared, results: list) -> dict[str, float]:
    """Each chosen router's AUC on the suite's test split, and random mixing's (the single models' hull)."""
    test = prep.suite.rows("test")
    singles = singles_on(prep, test)
    aucs = {r.name: float(router_doc(r.test_points, singles)["auc"]) for r in results}
    hull = paired.resampled_aucs(None, prep.accept[test], prep.suite.costs[test], np.ones((1, len(test))))
    aucs[paired.RANDOM] = float(hull[0])
    return aucs


def prepared_suites(suites: Path):
    """Each suite under `suites` (or `suites` itself when it holds a suite.json), prepared with the configured tagger."""
    from tagrouter.offline.prepare import configured_tagger

    folders = [suites] if (suites / "suite.json").is_file() else suite_folders(suites)
    tagger = configured_tagger()
    for folder in folders:
        yield prepare(load_suite(folder), tagger, show_progress=False)


def scored(prep: Prepared, results: list, counts: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Each chosen router's test AUC and random mixing's, and TagRouter's per-resample differences from each."""
    test = prep.suite.rows("test")
    aucs = aucs_on_test(prep, results)
    routings = {r.name: r.test.choices for r in results} | {paired.RANDOM: None}
    return aucs, paired.differences(routings, prep.accept[test], prep.suite.costs[test], counts)


def routers_measured(cautious: bool) -> list:
    """The registry's routers, and with `cautious` TagRouter with its caution stage too."""
    return [*default_routers(), *([TagRouter(name=CAUTIOUS, caution=True)] if cautious else [])]


def measure(prep: Prepared, size: int | None, seeds: int, cautious: bool = False) -> dict:
    """Mean AUC per router over the seeds and TagRouter's paired comparisons (`size` None: the full train split)."""
    test = prep.suite.rows("test")
    counts = paired.resample_counts(len(test))
    runs = []
    for seed in range(seeds if size is not None else 1):
        suite = prep.suite if size is None else with_train_size(prep.suite, size, seed)
        runs.append(one_run(dataclasses.replace(prep, suite=suite), counts, routers_measured(cautious)))
    names = list(runs[0][0])
    mean_auc = {n: float(np.mean([a[n] for a, _ in runs])) for n in names}
    against = {}
    for n in names:
        if n == paired.SUBJECT:
            continue
        diffs = np.mean([d[n] for _, d in runs], axis=0)
        against[n] = paired.summary(mean_auc[paired.SUBJECT] - mean_auc[n], diffs)
    per_seed = {n: [a[n] for a, _ in runs] for n in names}
    return {"train": size or len(prep.suite.rows("train")), "seeds": len(runs), "mean_auc": mean_auc,
            "auc_per_seed": per_seed, "against": against}


def worst_seed(row: dict, name: str = paired.SUBJECT) -> float:
    """The lowest over the seeds of a router's test AUC minus random mixing's."""
    per_seed = row["auc_per_seed"]
    return float(min(np.subtract(per_seed[name], per_seed[paired.RANDOM])))


def table(rows: list[dict]) -> str:
    others = [b for b in (*BASELINES, CAUTIOUS) if b in rows[0]["mean_auc"]]
    worst = [paired.SUBJECT, *([CAUTIOUS] if CAUTIOUS in others else [])]
    head = ("| suite | train queries | seeds | TagRouter | " + " | ".join(others) + " | "
            + " | ".join(f"TagRouter vs {b}" for b in others) + " | "
            + " | ".join(f"worst seed: {n} - random" for n in worst) + " |")
    lines = [head, "|---" * (4 + 2 * len(others) + len(worst)) + "|"]
    for r in rows:
        auc = r["mean_auc"]
        lines.append(f"| {r['suite']} | {r['train']} | {r['seeds']} | {auc[paired.SUBJECT]:.4f} | "
                     + " | ".join(f"{auc[b]:.4f}" for b in others) + " | "
                     + " | ".join(comparison(r["against"][b]) for b in others) + " | "
                     + " | ".join(f"{worst_seed(r, n):+.4f}" for n in worst) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True, help="a folder of suites (or one suite folder)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 300])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also the full train split (one run)")
    parser.add_argument("--cautious", action="store_true", help=f"also {CAUTIOUS!r}: TagRouter with its caution stage")
    parser.add_argument("--out", type=Path, required=True, help="Markdown table (and .json beside it)")
    args = parser.parse_args(argv)
    rows = []
    for prep in prepared_suites(args.suites):
        for size in [*args.sizes, *([None] if args.full else [])]:
            started = time.perf_counter()
            rows.append({"suite": prep.suite.name, **measure(prep, size, args.seeds, args.cautious)})
            print(f"{prep.suite.name} train={rows[-1]['train']}: {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    args.out.write_text(HEADER.format(command=" ".join(["python -m tagrouter.offline.small_data", *(argv or sys.argv[1:])]))
                        + table(rows))
    print(f"wrote {args.out}")
    return 0


HEADER = """# Routing quality on small data

Generated by `{command}` (tagrouter/offline/small_data.py): do not edit by hand.
Each suite's train split is cut to N queries drawn at random, once per seed (`tagrouter eval
--train-size N --seed S`); valid and test are unchanged. Every router is fitted on the cut train
split and chosen on the selection rows (valid plus the cut train split out-of-fold), as in
`tagrouter eval`; nothing is chosen on test. AUC is on test, averaged over the seeds.
"TagRouter vs X" is TagRouter's mean AUC minus X's, with the 95% paired bootstrap interval over
test queries (1,000 resamples, the same for every router and seed; per-resample differences
averaged over the seeds), and the call: *ahead* (interval above 0), *behind* (below 0) or *level*.
"worst seed" is the lowest single seed's TagRouter AUC minus random mixing's (a single seed's test
noise is that of the full suite's paired interval in docs/RESULTS.md: about ±.03 on the AlpacaEval
suites' 160 test queries).
"cautious" (with `--cautious`) is TagRouter with its caution stage (`TagRouter(caution=True)`,
tagrouter/offline/routers/tag_router_selection.py): after its tag set is chosen, its prior strength
(up to 1,000) and tag evidence are chosen again by the one-standard-error rule toward the most
shrinkage toward each model's overall rate, so the fewer the selection rows, the more cautious the
fit. Shrinking toward the overall rates is not routing like random mixing, though: the decision
rule still ranks queries by their estimated cost. Whether the stage is on in the served TagRouter
is chosen on train rows left out of the fit, never on this table (docs/DESIGN-ROWS.md: off).

"""


if __name__ == "__main__":
    sys.exit(main())
