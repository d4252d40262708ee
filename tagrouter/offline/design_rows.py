"""Choosing TagRouter's own rules without test: train cut to N queries, the train rows left out scored.

    python -m tagrouter.offline.design_rows --suites ../shared/data/suites --sizes 150 300 0.8 \
        --seeds 5 --out docs/DESIGN-ROWS.md

A rule of the selection itself (which stages run, what counts as simpler) cannot be chosen on the
selection rows it runs on, and must not be chosen on test. Here each suite's train split is cut
to N queries (`suite.with_train_size`; N < 1: that share of the split), every router is fitted and
chosen on the cut split and valid as `tagrouter eval` does, and scored on the train queries the
cut left out: rows no router was fitted or chosen on. No test outcome is read (the left-out rows
take the test split's place, so every fit, choice and score indexes train, valid or left-out rows
only). The table gives each router's AUC there, averaged over the seeds, and each TagRouter
variant's mean AUC minus the served TagRouter's, with the seeds on which it was higher, equal and lower.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from tagrouter.offline import evaluate, paired
from tagrouter.offline.prepare import Prepared
from tagrouter.offline.routers import TagRouter, default_routers
from tagrouter.offline.small_data import CAUTIOUS, aucs_on_test, prepared_suites
from tagrouter.offline.suite import with_train_size

# TagRouter's variants measured beside the served one (`TagRouter()`), by name.
VARIANTS = {
    "parsimony": lambda: TagRouter(name="parsimony", parsimony=True),  # the 1-SE rule toward the smallest tag set
    CAUTIOUS: lambda: TagRouter(name=CAUTIOUS, caution=True),  # the 1-SE rule toward the strongest prior
}


def train_size(prep: Prepared, size: float) -> int:
    """`size` train queries (a whole number), or with 0 < `size` < 1 that share of the train split;
    at least 2 kept and 1 left out to score."""
    n = len(prep.suite.rows("train"))
    if 0 < size < 1:
        kept = int(round(size * n))
    elif size >= 1 and float(size).is_integer():
        kept = int(size)
    else:
        raise ValueError(f"--sizes: {size:g} is neither a whole number of queries nor a share in (0, 1)")
    if not 2 <= kept < n:
        raise ValueError(f"--sizes: {size:g} keeps {kept} of {prep.suite.name}'s {n} train queries; "
                         f"keep between 2 and {n - 1} so that some are left out to score")
    return kept


def one_cut(prep: Prepared, size: int, seed: int, routers: list) -> dict[str, float]:
    """Every router's AUC on the train rows left out when train is cut to `size` queries (`seed`)."""
    train = prep.suite.rows("train")
    cut = with_train_size(prep.suite, size, seed)
    left_out = np.setdiff1d(train, cut.rows("train"))
    # the rows left out take the test split's place: the selection never reads that split
    scored = dataclasses.replace(prep, suite=dataclasses.replace(cut, splits={**cut.splits, "test": left_out}))
    results, _ = evaluate.select_all(scored, show_progress=False, routers=routers)
    return aucs_on_test(scored, results)


def measure(prep: Prepared, size: int, seeds: int, variants: list[str]) -> dict:
    routers = [*default_routers(), *(VARIANTS[v]() for v in variants)]
    runs = [one_cut(prep, size, seed, routers) for seed in range(seeds)]
    per_seed = {n: [r[n] for r in runs] for n in runs[0]}
    served = np.array(per_seed[paired.SUBJECT])
    return {"suite": prep.suite.name, "train": size, "left_out": len(prep.suite.rows("train")) - size,
            "seeds": seeds, "mean_auc": {n: float(np.mean(v)) for n, v in per_seed.items()},
            "auc_per_seed": per_seed,
            "variants": {v: variant_summary(np.array(per_seed[v]) - served) for v in variants}}


def variant_summary(differences: np.ndarray) -> dict:
    """A variant's AUC minus the served TagRouter's per seed: the mean, and the seeds above, level and below."""
    return {"difference": float(np.mean(differences)), "seeds_higher": int(np.sum(differences > 1e-12)),
            "seeds_equal": int(np.sum(np.abs(differences) <= 1e-12)), "seeds_lower": int(np.sum(differences < -1e-12))}


def table(rows: list[dict]) -> str:
    names = list(rows[0]["mean_auc"])
    variants = list(rows[0]["variants"])
    lines = ["| suite | train queries | rows scored | seeds | " + " | ".join(names) + " | "
             + " | ".join(f"{v} - TagRouter (seeds higher / equal / lower)" for v in variants) + " |",
             "|---" * (4 + len(names) + len(variants)) + "|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['train']} | {r['left_out']} | {r['seeds']} | "
                     + " | ".join(f"{r['mean_auc'][n]:.4f}" for n in names) + " | "
                     + " | ".join(f"{d['difference']:+.4f} ({d['seeds_higher']} / {d['seeds_equal']} / {d['seeds_lower']})"
                                  for d in (r["variants"][v] for v in variants)) + " |")
    summary = []
    for v in variants:
        diffs = [r["variants"][v]["difference"] for r in rows]
        summary.append(f"- {v} - TagRouter: mean {np.mean(diffs):+.4f} over the {len(rows)} rows, "
                       f"lowest {min(diffs):+.4f}, highest {max(diffs):+.4f}.")
    return "\n".join(lines) + "\n\n" + "\n".join(summary) + "\n"


HEADER = """# Choosing TagRouter's rules on rows no router saw

Generated by `{command}` (tagrouter/offline/design_rows.py): do not edit by hand.
Each suite's train split is cut to N queries drawn at random, once per seed (a share when N < 1);
every router is fitted on the cut split and chosen on its selection rows (valid plus the cut split
out-of-fold), as `tagrouter eval` does, and scored on the train queries left out ("rows scored"),
which no router was fitted or chosen on. No test outcome is read. AUC as in docs/RESULTS.md, averaged
over the seeds. "tagrouter" is the served TagRouter; "parsimony" adds the one-standard-error rule
toward the smallest tag set (levels kept among domain, topic and attributes); "cautious" adds the
one-standard-error rule toward the strongest prior (docs/ROUTING-CHOICES.md). The rows scored
differ from seed to seed, so the spread over seeds is shown as the seeds on which a variant was higher,
equal and lower. "X - TagRouter" is variant X's AUC minus the served TagRouter's: negative, X is lower.

"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True, help="a folder of suites (or one suite folder)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[150, 300, 0.8],
                        help="train queries kept (a share of the split when < 1)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, required=True, help="Markdown table (and .json beside it)")
    args = parser.parse_args(argv)
    rows = []
    for prep in prepared_suites(args.suites):
        try:
            sizes = [train_size(prep, size) for size in args.sizes]
        except ValueError as err:
            parser.error(str(err))
        for size in sizes:
            rows.append(measure(prep, size, args.seeds, args.variants))
            print(f"{prep.suite.name} train={rows[-1]['train']}: "
                  + " ".join(f"{n} {a:.4f}" for n, a in rows[-1]["mean_auc"].items()), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    command = " ".join(["python -m tagrouter.offline.design_rows", *(argv if argv is not None else sys.argv[1:])])
    args.out.write_text(HEADER.format(command=command) + table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
