"""A copy of the weights' counts as one array, kept current by changed cells (WatchWeights deltas).

The router's copy (services/router/mirror.py) starts from the whole weights and then applies only
the (tag, model) rows that changed, never re-parsing the whole weights. Every Feedback changes the
`*` row, hence the prior, hence every tag's smoothed rate: after a change the copy makes a new
table, whose statistics of all tags (`ScoringTable.statistics`, the scorer's Score rule: a tag's
statistics depend only on its own counts and the `*` row) the router computes as the change
arrives, off the Route's path; a query then costs a lookup of its own tags' rows.
A cell carries its row as it now stands, not an increment, so applying one twice is harmless.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tagrouter.core import limits
from tagrouter.core.pool import ScoringTable
from tagrouter.core.scoring import ALL_QUERIES_TAG
from tagrouter.core.weights import Weights, WeightsError, counts_matrix

Cell = tuple[str, str, "list[float] | None"]  # tag, model, its counts (None: the model's row is gone)


class CountsCopy:
    """The weights of one version as arrays; `apply` changed cells, `table()` to score with."""

    def __init__(self, weights: Weights):
        self.version = weights.version
        self.models = list(weights.models)
        self.params = weights.params
        self.calibration = weights.calibration
        self._model_index = {m.name: i for i, m in enumerate(self.models)}
        self.tags = [t for t in weights.counts if t != ALL_QUERIES_TAG]
        self._rows = {t: i for i, t in enumerate(self.tags)}
        self._counts = counts_matrix([weights.counts[t] for t in self.tags], weights.model_names)
        self._all = counts_matrix([weights.counts.get(ALL_QUERIES_TAG, {})], weights.model_names)[0]
        self._table: ScoringTable | None = None

    def apply(self, cells: Iterable[Cell]) -> int:
        """Writes each changed cell into the copy; returns how many. WeightsError on a row out of the limits."""
        grown: list[str] = []
        applied = 0
        updates: list[tuple[str, int, list[float] | None]] = []
        for tag, model, row in cells:
            m = self._model_index.get(model)
            if m is None:
                continue  # a model outside the pool is never scored (as counts_matrix does)
            if row is not None:
                problem = limits.count_row_problem(row)
                if problem is not None:
                    raise WeightsError(f"delta: tag {tag!r}, model {model!r}: {problem}")
            if tag != ALL_QUERIES_TAG and tag not in self._rows:
                self._rows[tag] = len(self.tags) + len(grown)
                grown.append(tag)
            updates.append((tag, m, row))
        if grown:
            self.tags.extend(grown)
            self._counts = np.concatenate([self._counts, np.zeros((len(grown), *self._counts.shape[1:]))])
        for tag, m, row in updates:
            target = self._all if tag == ALL_QUERIES_TAG else self._counts[self._rows[tag]]
            target[m] = 0.0 if row is None else row
            applied += 1
        if applied:  # the table's statistics were of the counts before: the next query makes a new one
            self._table = None
        return applied

    def table(self) -> ScoringTable:
        """A ScoringTable that scores from the copy as it stands when it scores (one per change)."""
        if self._table is None:
            # `apply` writes cells in place and grows by making new arrays; a table held across an
            # update keeps the statistics it computed first (one query's worth of staleness, harmless)
            self._table = ScoringTable(self.version, self.models, self.params, dict(self._rows), self._counts,
                                       self._all, self.calibration)
        return self._table

