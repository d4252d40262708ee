"""The one router interface of the evaluation, in the spirit of RouteLLM's `Router` and its registry.

A router is fitted on rows of a prepared suite (the train split, or it without one fold) and
then predicts, for any queries, a score per model and an expected answer length per model
(`Prediction`), under each setting of its grid. Everything else is the same for every router
and lives outside it: the estimated costs (`prepare.estimated_costs`), the decision rule and
its knob path (`sweep`), the choice of settings on the selection rows (`selection`).

A router overrides `select` only when its search is more than one grid (TagRouter's stages);
an experiment adds a variant by constructing a router (another combination rule, another
knob path), never by patching functions.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tagrouter.offline import selection, sweep

if TYPE_CHECKING:
    from tagrouter.offline.prepare import Prepared


@dataclass
class Prediction:
    """One setting's predictions for some queries."""

    scores: np.ndarray  # [R, M] predicted score per (query, model): higher is better
    output_tokens: np.ndarray  # [R, M] expected answer length, for the cost estimate
    # [M] the router's own overall rate per model, from which the quality margin's anchor is
    # chosen (TagRouter: the `*` tag's rate); None: the mean of its predicted scores on train
    # (predicted out-of-fold).
    overall: np.ndarray | None = None


class Fitted(Protocol):
    """A router fitted on some rows."""

    def predict(self, setting: dict, rows: np.ndarray) -> Prediction:
        """Predictions for the suite's `rows` under `setting` (one of the router's settings)."""


class Router(ABC):
    """Fit on rows, predict scores and expected output tokens; chosen and swept like every router."""

    def __init__(self, name: str, knob_path: sweep.KnobPath = sweep.knob_path):
        self.name = name
        self.knob_path = knob_path  # the decision rule's path of settings (sweep.knob_path)

    @abstractmethod
    def settings(self, prep: Prepared) -> list[dict]:
        """The settings searched on the selection rows (JSON-ready dicts)."""

    @abstractmethod
    def fit(self, prep: Prepared, rows: np.ndarray) -> Fitted:
        """The router fitted on the suite's `rows` (their outcomes; never those of other rows)."""

    def complexity(self, setting: dict) -> tuple:
        """A sort key of a setting's complexity for the one-standard-error rule (smaller is simpler);
        the default makes every setting equally simple (no simplification)."""
        return ()

    def select(self, prep: Prepared, folds: list[np.ndarray]) -> selection.RouterResult:
        """Its setting chosen on the selection rows, and its curve on test: the grid searched at once,
        then simplified by the one-standard-error rule."""
        return selection.grid_search(self, prep, folds, self.settings(prep))
