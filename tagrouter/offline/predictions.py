"""`tagrouter eval --export-predictions FILE`: every router's test predictions and choices, for re-scoring.

The file holds what the curves, the AUC and the paired intervals are computed from, so anyone can
recompute them from the suite's outcomes without the project's code:

    {"models": [...], "test_ids": [...],
     "routers": {NAME: {"scores": [[per model] per test query], "estimated_costs": [[...]],
                        "choices": [[model index per test query] per knob point]}}}

Test queries are in `test_ids` order (the suite's test split), models in `models` order, knob
points in the order of the router's curve (the quality margin toward its anchor, then the cost
knob). Random mixing has no predictions: it is the hull of the single models' outcomes.
"""
from __future__ import annotations

import json
from pathlib import Path

from tagrouter.offline.prepare import Prepared
from tagrouter.offline.selection import RouterResult


def predictions_doc(prep: Prepared, results: list[RouterResult]) -> dict:
    """The export's JSON document for the routers' results on the suite's test split."""
    suite = prep.suite
    return {
        "models": suite.model_names,
        "test_ids": [suite.query_ids[i] for i in suite.rows("test")],
        "routers": {r.name: {"scores": r.test.scores.tolist(), "estimated_costs": r.test.estimated_costs.tolist(),
                             "choices": r.test.choices.tolist()} for r in results if r.test is not None},
    }


def write_predictions(prep: Prepared, results: list[RouterResult], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(predictions_doc(prep, results), allow_nan=False) + "\n")
