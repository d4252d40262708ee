"""TagRouter against itself under a change (a new encoder, say): the paired interval of its test AUC,
from two `tagrouter eval --export-predictions` files of the same suite, on the same resamples as
tagrouter.offline.paired (docs/BENCHMARKS.md "The encoder graph" uses it for the int8 graphs):

    TAGROUTER_MODEL_DIR=OLD tagrouter eval --suite S --out old.json --export-predictions old-pred.json
    TAGROUTER_MODEL_DIR=NEW tagrouter eval --suite S --out new.json --export-predictions new-pred.json
    python -m tagrouter.offline.paired_exports S old-pred.json new-pred.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tagrouter.offline import paired
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.suite import load_suite


def compare_exports(suite_dir: Path, before: dict, after: dict, router: str = paired.SUBJECT) -> dict:
    """`router`'s AUC after minus before on the suite's test split, with its interval and call."""
    if before["test_ids"] != after["test_ids"] or before["models"] != after["models"]:
        raise ValueError("the two exports are not of the same suite's test split")
    suite = load_suite(suite_dir)
    row = {q: i for i, q in enumerate(suite.query_ids)}
    test = np.array([row[q] for q in before["test_ids"]])
    accept, costs = metrics.accepted(suite.scores, suite.tie_margin)[test], suite.costs[test]
    counts = paired.resample_counts(len(test))
    whole = np.ones((1, len(test)))  # the observed split itself
    aucs = {}
    for name, doc in (("before", before), ("after", after)):
        choices = np.array(doc["routers"][router]["choices"])
        aucs[name] = (float(paired.resampled_aucs(choices, accept, costs, whole)[0]),
                      paired.resampled_aucs(choices, accept, costs, counts))
    out = paired.summary(aucs["after"][0] - aucs["before"][0], aucs["after"][1] - aucs["before"][1])
    return {"suite": Path(suite_dir).name, "router": router, "test_queries": len(test),
            "auc_before": round(aucs["before"][0], 4), "auc_after": round(aucs["after"][0], 4),
            "after_minus_before": round(out["auc_difference"], 4), "interval": [round(v, 4) for v in out["interval"]],
            "call": {"ahead": "after ahead", "behind": "after behind", "level": "level"}[out["call"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("before", type=Path, help="--export-predictions file before the change")
    parser.add_argument("after", type=Path, help="... and after it")
    parser.add_argument("--router", default=paired.SUBJECT)
    args = parser.parse_args()
    print(json.dumps(compare_exports(args.suite, json.loads(args.before.read_text()), json.loads(args.after.read_text()),
                                     args.router)))


if __name__ == "__main__":
    main()
