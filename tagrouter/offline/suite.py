"""Read and validate a routing suite in the canonical format (shared/docs/ROUTING.md, section 2).

Every error names the file, the line (for outcomes.jsonl) and the key, so a user can fix
their own data. Nothing is returned unless the whole suite is valid.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagrouter.core.weights import WeightsError, validate_name

SPLITS = ("train", "valid", "test")
SCORE_KINDS = ("preference_vs_reference", "judge_1to10", "correctness")
ROW_KEYS = {"query_id": str, "query": str, "model": str, "score": (int, float), "input_tokens": int,
            "output_tokens": int, "cost_usd": (int, float), "tokens_estimated": bool}


class SuiteError(ValueError):
    """The suite breaks the format; the message says where."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float


@dataclass
class Suite:
    name: str
    path: Path
    tie_margin: float
    score_kind: str
    models: list[ModelInfo]
    query_ids: list[str]
    queries: list[str]
    tasks: list[str | None]
    scores: np.ndarray  # [Q, M]
    costs: np.ndarray  # [Q, M] USD
    input_tokens: np.ndarray  # [Q, M]
    output_tokens: np.ndarray  # [Q, M]
    splits: dict[str, np.ndarray] = field(default_factory=dict)  # split -> row indices

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def rows(self, split: str) -> np.ndarray:
        return self.splits[split]


def _fail(path: Path, message: str, line: int | None = None) -> SuiteError:
    where = f"{path}:{line}" if line is not None else str(path)
    return SuiteError(f"{where}: {message}")


def _load_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "missing (a suite folder holds suite.json and outcomes.jsonl)") from None
    except UnicodeDecodeError:
        raise _fail(path, "not UTF-8") from None
    except json.JSONDecodeError as err:
        raise _fail(path, f"not valid JSON ({err.msg})", err.lineno) from None
    if not isinstance(meta, dict):
        raise _fail(path, "must hold a JSON object")
    for key in ("name", "tie_margin", "models", "splits"):
        if key not in meta:
            raise _fail(path, f"key '{key}' is missing")
    margin = meta["tie_margin"]
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 1:
        raise _fail(path, f"key 'tie_margin' must be a number in [0, 1], not {margin!r}")
    if meta.get("score_kind", SCORE_KINDS[0]) not in SCORE_KINDS:
        raise _fail(path, f"key 'score_kind' must be one of {', '.join(SCORE_KINDS)}")
    if not isinstance(meta["models"], dict) or len(meta["models"]) < 2:
        raise _fail(path, "key 'models' must map at least two model names to prices")
    for name, info in meta["models"].items():
        try:  # fit writes the pool into weights, which hold no other names
            validate_name("model", name)
        except WeightsError as err:
            raise _fail(path, f"key 'models': {err}") from None
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            value = info.get(key) if isinstance(info, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise _fail(path, f"key 'models.{name}.{key}' must be a price >= 0, not {value!r}")
    if not isinstance(meta["splits"], dict):
        raise _fail(path, "key 'splits' must map train/valid/test to lists of query ids")
    for split in SPLITS:
        ids = meta["splits"].get(split)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _fail(path, f"key 'splits.{split}' must be a list of query ids")
    return meta


def load_suite(folder: Path | str) -> Suite:
    """Reads suite.json and outcomes.jsonl; raises SuiteError naming file, line and key."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SuiteError(f"{folder}: not a folder (a suite is a folder with suite.json and outcomes.jsonl)")
    meta_path, rows_path = folder / "suite.json", folder / "outcomes.jsonl"
    meta = _load_meta(meta_path)
    names = list(meta["models"])
    column = {n: i for i, n in enumerate(names)}
    by_query: dict[str, int] = {}
    queries, tasks, first_line = [], [], []
    cells: dict[tuple[int, int], tuple[float, float, int, int]] = {}
    try:
        handle = rows_path.open(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(rows_path, "missing (a suite folder holds suite.json and outcomes.jsonl)") from None
    with handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise _fail(rows_path, f"not valid JSON ({err.msg})", line_no) from None
                if not isinstance(row, dict):
                    raise _fail(rows_path, "each line must be a JSON object", line_no)
                for key, kind in ROW_KEYS.items():
                    if key not in row:
                        raise _fail(rows_path, f"key '{key}' is missing", line_no)
                    value = row[key]
                    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kind):
                        raise _fail(rows_path, f"key '{key}' has the wrong type ({type(value).__name__})", line_no)
                score, cost = float(row["score"]), float(row["cost_usd"])
                if not (math.isfinite(score) and 0 <= score <= 1):
                    raise _fail(rows_path, f"key 'score' must be in [0, 1], not {row['score']}", line_no)
                if not math.isfinite(cost) or cost < 0:
                    raise _fail(rows_path, f"key 'cost_usd' must be >= 0, not {row['cost_usd']}", line_no)
                if row["input_tokens"] < 0 or row["output_tokens"] < 0:
                    raise _fail(rows_path, "keys 'input_tokens' and 'output_tokens' must be >= 0", line_no)
                if row["model"] not in column:
                    raise _fail(rows_path, f"key 'model': {row['model']!r} is not in suite.json's models", line_no)
                qid = row["query_id"]
                if qid not in by_query:
                    by_query[qid] = len(queries)
                    queries.append(row["query"])
                    tasks.append(row.get("task"))
                    first_line.append(line_no)
                q = by_query[qid]
                if row["query"] != queries[q]:
                    raise _fail(rows_path, f"key 'query' differs from the first row of query_id {qid!r}", line_no)
                if not row["query"].strip():
                    raise _fail(rows_path, "key 'query' is empty", line_no)
                cell = (q, column[row["model"]])
                if cell in cells:
                    raise _fail(rows_path, f"key 'model': second row for query_id {qid!r} and model {row['model']!r}",
                                line_no)
                cells[cell] = (score, cost, row["input_tokens"], row["output_tokens"])
        except UnicodeDecodeError as err:
            raise _fail(rows_path, f"not UTF-8 ({err.reason})") from None
    if not queries:
        raise _fail(rows_path, "holds no rows")
    shape = (len(queries), len(names))
    scores, costs, tin, tout = (np.zeros(shape) for _ in range(4))
    for q, qid in enumerate(by_query):
        for m, name in enumerate(names):
            if (q, m) not in cells:
                raise _fail(rows_path, f"key 'model': query_id {qid!r} has no row for model {name!r}", first_line[q])
            scores[q, m], costs[q, m], tin[q, m], tout[q, m] = cells[(q, m)]
    splits, seen = {}, {}
    for split in SPLITS:
        ids = meta["splits"][split]
        unknown = [i for i in ids if i not in by_query]
        if unknown:
            raise _fail(meta_path, f"key 'splits.{split}': query id {unknown[0]!r} has no rows in outcomes.jsonl")
        for i in ids:
            if i in seen:
                raise _fail(meta_path, f"key 'splits.{split}': query id {i!r} is also in split '{seen[i]}'")
            seen[i] = split
        splits[split] = np.array([by_query[i] for i in ids], dtype=np.int64)
    if len(splits["train"]) == 0:
        raise _fail(meta_path, "key 'splits.train' is empty")
    models = [ModelInfo(n, float(meta["models"][n]["input_usd_per_mtok"]),
                        float(meta["models"][n]["output_usd_per_mtok"])) for n in names]
    return Suite(name=str(meta["name"]), path=folder, tie_margin=float(meta["tie_margin"]),
                 score_kind=meta.get("score_kind", SCORE_KINDS[0]), models=models, query_ids=list(by_query),
                 queries=queries, tasks=tasks, scores=scores, costs=costs, input_tokens=tin, output_tokens=tout,
                 splits=splits)


MIN_TRAIN = 2  # queries: a router is fitted on train and its settings chosen out of fold there


def check_routable(suite: Suite) -> None:
    """What fitting and evaluating routers needs beyond a well-formed suite: a train split to fit on
    and a cost to trade (when every model costs the same, no knob point differs from another and the
    cost-quality area is undefined). SuiteError naming the suite otherwise."""
    train = len(suite.rows("train"))
    if train < MIN_TRAIN:
        raise SuiteError(f"{suite.name}: the train split has {train} queries; fitting a router needs at least "
                         f"{MIN_TRAIN} (suite.json 'splits')")
    totals = suite.costs.sum(axis=0)
    if not totals.max() > totals.min():
        raise SuiteError(f"{suite.name}: every model costs the same over the suite ({totals.min():.6g} USD): there is "
                         "no cost to trade for quality; give the models their prices (suite.json 'models', or "
                         "`suite import --price`), or fit with --no-tune")


def with_train_size(suite: Suite, size: int, seed: int = 0) -> Suite:
    """The suite with its train split cut to `size` queries drawn at random (`seed`); valid and test
    unchanged. The small pools a new user starts with, measured without new data."""
    train = suite.rows("train")
    if not MIN_TRAIN <= size <= len(train):
        raise ValueError(f"--train-size must be between {MIN_TRAIN} and the train split's {len(train)} queries, not {size}")
    kept = np.sort(np.random.default_rng(seed).choice(train, size=size, replace=False))
    return dataclasses.replace(suite, splits={**suite.splits, "train": kept})


def suite_folders(root: Path) -> list[Path]:
    """The suites under `root`: its subfolders that hold a suite.json, in name order."""
    return sorted(p for p in Path(root).iterdir() if (p / "suite.json").is_file())
