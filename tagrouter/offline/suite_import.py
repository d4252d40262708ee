"""`tagrouter suite import`: common evaluation outputs -> a suite in the canonical format.

Formats (each reader yields `Outcome`s; the rest is shared):
- `rows`: CSV or JSONL of (prompt, model, score[, cost_usd, input_tokens, output_tokens | tokens, response]);
- `routerbench`: RouterBench's wide CSV, one row per prompt: `prompt`, per model a score column
  `<model>` (or `<model>|score`, then other plain columns are meta) and optionally
  `<model>|total_cost`, `<model>|model_response` or `<model>|resp_chars`;
- `alpacaeval`: AlpacaEval annotation files (a JSON list of `instruction`, `generator_1`,
  `generator_2`, `output_1`, `output_2`, `preference` in [1, 2]): generator_2 scores preference - 1
  against the reference generator_1, which scores 0.5 (as on the shared ae2 suites);
- `battles`: pairwise battles (prompt, model_a, model_b, winner in {model_a, model_b, a, b, tie,
  tie (bothbad)}) as CSV or JSONL: a model's score on a prompt is its mean result (win 1, tie 0.5).

Prices come from a table (`--prices FILE`: CSV or JSON list of model, input_usd_per_mtok,
output_usd_per_mtok, or a JSON object model -> {the two prices}) or flags (`--price MODEL=IN,OUT`);
a row's own cost wins over a price. Tokens not given are estimated as ceil(chars / 4). Every error
names the file, the line (the record of a JSON list) and the field. Files are UTF-8, with or without
a byte-order mark.
The splits are 70/10/20 by a hash of the query id (stable when rows are added).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tagrouter.core.limits import MAX_PROMPT_CHARS
from tagrouter.core.weights import WeightsError, validate_name
from tagrouter.offline.suite import SuiteError, load_suite

FORMATS = ("rows", "routerbench", "alpacaeval", "battles")
SCORE_KINDS = {"rows": "judge_1to10", "routerbench": "correctness", "alpacaeval": "preference_vs_reference",
               "battles": "preference_vs_reference"}
SPLIT_SHARES = (("train", 0.7), ("valid", 0.1), ("test", 0.2))
BATTLE_RESULTS = {"model_a": (1.0, 0.0), "a": (1.0, 0.0), "model_b": (0.0, 1.0), "b": (0.0, 1.0),
                  "tie": (0.5, 0.5), "tie (bothbad)": (0.5, 0.5)}


class ImportFailure(ValueError):
    """A row or file that cannot be imported; the message names the file, line and field."""


class RecordNo(int):
    """The number of a record in a JSON list or object, which may span many lines: errors say `record N`."""


def failure(path: Path, line: int | None, field: str | None, message: str) -> ImportFailure:
    where = str(path) if line is None else f"{path}: record {line}" if isinstance(line, RecordNo) else f"{path}:{line}"
    return ImportFailure(f"{where}: {'field ' + repr(field) + ': ' if field else ''}{message}")


@dataclass
class Outcome:
    prompt: str
    model: str
    score: float
    where: tuple[Path, int]  # file and line (or RecordNo), for errors found later
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


# --- reading records ------------------------------------------------------------------------
def records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, record) of a CSV (line 1 is the header) or JSONL file; JSON lists for `.json`."""
    path = Path(path)
    if not path.is_file():
        raise failure(path, None, None, "no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # a prompt as long as the front door takes (csv's default stops at 128 KiB)
            csv.field_size_limit(max(csv.field_size_limit(), MAX_PROMPT_CHARS))
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                try:
                    for record in reader:
                        yield reader.line_num, record
                except csv.Error as err:
                    # DictReader's own line_num stops at the last good record
                    raise failure(path, reader.reader.line_num, None, f"not valid CSV ({err})") from None
        elif suffix == ".json":
            doc = json.loads(path.read_text(encoding="utf-8-sig"))
            if not isinstance(doc, list):
                raise failure(path, None, None, "expected a JSON list of records")
            yield from ((RecordNo(i + 1), r) for i, r in enumerate(doc))
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as f:
                for n, text in enumerate(f, 1):
                    if text.strip():
                        try:
                            yield n, json.loads(text)
                        except json.JSONDecodeError as err:
                            raise failure(path, n, None, f"not valid JSON ({err.msg})") from None
        else:
            raise failure(path, None, None, "unknown file type: use .csv, .jsonl or .json")
    except UnicodeDecodeError:
        raise failure(path, None, None, "not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise failure(path, err.lineno, None, f"not valid JSON ({err.msg})") from None


def text(path: Path, line: int, record: dict, field: str) -> str:
    if not isinstance(record, dict):
        raise failure(path, line, None, "expected an object with named fields")
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise failure(path, line, field, "missing or empty")
    try:  # JSON may escape a lone UTF-16 surrogate, which no UTF-8 file (nor the query id's hash) can hold
        value.encode()
    except UnicodeEncodeError as err:
        raise failure(path, line, field, f"not valid Unicode ({err.reason} at character {err.start})") from None
    return value


def model_name(path: Path, line: int, field: str, name: str) -> str:
    """`name` if the weights can hold it (fit writes the pool into them)."""
    try:
        validate_name("model", name)
    except WeightsError as err:
        raise failure(path, line, field, str(err)) from None
    return name


def number(path: Path, line: int, record: dict, field: str, low: float = 0.0, high: float = math.inf,
           required: bool = True) -> float | None:
    value = record.get(field)
    if isinstance(value, bool):  # as the suite reader: true is no score
        raise failure(path, line, field, f"not a number: {value!r}")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise failure(path, line, field, "missing")
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise failure(path, line, field, f"not a number: {value!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise failure(path, line, field, f"{value} is outside [{low:g}, {high:g}]")
    return value


def count(path: Path, line: int, record: dict, field: str) -> int | None:
    value = number(path, line, record, field, 0, 1e9, required=False)
    return None if value is None else int(value)


# --- the four formats -----------------------------------------------------------------------
def read_rows(path: Path) -> Iterator[Outcome]:
    for line, r in records(path):
        prompt, model = text(path, line, r, "prompt"), model_name(path, line, "model", text(path, line, r, "model"))
        out_tokens = count(path, line, r, "output_tokens")
        if out_tokens is None:
            out_tokens = count(path, line, r, "tokens")
        if out_tokens is None and isinstance(r.get("response"), str):
            out_tokens = estimate_tokens(r["response"])
        yield Outcome(prompt, model, number(path, line, r, "score", 0, 1), (path, line),
                      number(path, line, r, "cost", required=False) if "cost" in r else
                      number(path, line, r, "cost_usd", required=False),
                      count(path, line, r, "input_tokens"), out_tokens)


def read_routerbench(path: Path) -> Iterator[Outcome]:
    header_line = 1 if path.suffix.lower() == ".csv" else None
    unscored: dict[str, str] = {}  # model -> its column, while no row has scored it
    for line, r in records(path):
        prompt = text(path, line, r, "prompt")
        # `<model>|score` columns name the models outright; else every plain column but the meta ones
        # is one (a model without a cost column is priced by the table or a flag)
        columns = {k[:-len("|score")]: k for k in r if k and k.endswith("|score")} or \
                  {k: k for k in r if k and "|" not in k and k not in ROUTERBENCH_META}
        if not columns:
            raise failure(path, line, None, "no model columns (expected `<model>` or `<model>|score`)")
        for model, column in columns.items():
            if model not in unscored:  # the column's header names the model
                unscored[model] = column
                model_name(path, header_line or line, column, model)
            try:
                score = number(path, line, r, column, 0, 1, required=False)
            except ImportFailure as err:
                if column != model:
                    raise
                raise ImportFailure(f"{err} (columns taken as models: {', '.join(columns)}: every column but "
                                    f"{', '.join(sorted(ROUTERBENCH_META))} and `<model>|...`; name the score "
                                    "columns `<model>|score` to keep other columns out)") from None
            if score is None:  # an empty cell: no outcome, the prompt is left out (and counted) as a missing row
                continue
            unscored[model] = ""
            response, chars = r.get(f"{model}|model_response"), count(path, line, r, f"{model}|resp_chars")
            yield Outcome(prompt, model, score, (path, line), number(path, line, r, f"{model}|total_cost", required=False),
                          None, estimate_tokens(response if isinstance(response, str) else chars))
    never = [column for column in unscored.values() if column]
    if never:  # a model is never left out silently
        raise failure(path, header_line, never[0], "no row has a score in this column")


ROUTERBENCH_META = {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}


def read_alpacaeval(path: Path) -> Iterator[Outcome]:
    for line, r in records(path):
        prompt = text(path, line, r, "instruction")
        reference, model = (model_name(path, line, k, text(path, line, r, k)) for k in ("generator_1", "generator_2"))
        preference = number(path, line, r, "preference", 1, 2)
        lengths = [estimate_tokens(r[k]) if isinstance(r.get(k), str) else None for k in ("output_1", "output_2")]
        yield Outcome(prompt, reference, 0.5, (path, line), output_tokens=lengths[0])
        yield Outcome(prompt, model, preference - 1.0, (path, line), output_tokens=lengths[1])


def read_battles(path: Path) -> Iterator[Outcome]:
    for line, r in records(path):
        prompt = text(path, line, r, "prompt")
        a, b = (model_name(path, line, k, text(path, line, r, k)) for k in ("model_a", "model_b"))
        if a == b:
            raise failure(path, line, "model_b", f"the same model as model_a ({a!r})")
        winner = text(path, line, r, "winner").strip().lower()
        if winner not in BATTLE_RESULTS and winner not in (a.lower(), b.lower()):
            raise failure(path, line, "winner", f"{r['winner']!r} is not model_a, model_b, tie, tie (bothbad) "
                                                "or one of the two models")
        sa, sb = BATTLE_RESULTS.get(winner) or ((1.0, 0.0) if winner == a.lower() else (0.0, 1.0))
        yield Outcome(prompt, a, sa, (path, line))
        yield Outcome(prompt, b, sb, (path, line))


READERS = {"rows": read_rows, "routerbench": read_routerbench, "alpacaeval": read_alpacaeval,
           "battles": read_battles}


def estimate_tokens(s: str | int | None) -> int | None:
    """ceil(chars / 4) of a text or a count of characters (None for None)."""
    return None if s is None else max(1, math.ceil((s if isinstance(s, int) else len(s)) / 4))


# --- prices ---------------------------------------------------------------------------------
def read_prices(path: Path | None, flags: list[str]) -> dict[str, tuple[float, float]]:
    """model -> (input, output) USD per million tokens, from a CSV/JSON table and MODEL=IN,OUT flags."""
    prices: dict[str, tuple[float, float]] = {}
    if path is not None:
        path = Path(path)
        if path.suffix.lower() == ".json" and path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8-sig"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise failure(path, None, None, f"not valid JSON ({err})") from None
            if not isinstance(doc, (dict, list)):
                raise failure(path, None, None, "expected a list of {model, input_usd_per_mtok, output_usd_per_mtok} "
                                                "or an object: model -> {input_usd_per_mtok, output_usd_per_mtok}")
            if isinstance(doc, dict):
                doc = [{"model": m, **(v if isinstance(v, dict) else {})} for m, v in doc.items()]
            items = [(RecordNo(i + 1), r) for i, r in enumerate(doc)]
        else:
            items = list(records(path))
        for line, r in items:
            prices[text(path, line, r, "model")] = (number(path, line, r, "input_usd_per_mtok", 0, 1e6),
                                                    number(path, line, r, "output_usd_per_mtok", 0, 1e6))
    for flag in flags:
        model, _, pair = flag.partition("=")
        parts = pair.split(",")
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            values = ()
        if not model or len(values) != 2 or not all(math.isfinite(v) and 0 <= v <= 1e6 for v in values):
            raise ImportFailure(f"--price {flag!r}: expected MODEL=INPUT_USD_PER_MTOK,OUTPUT_USD_PER_MTOK")
        prices[model] = values
    return prices


# --- the suite ------------------------------------------------------------------------------
def query_id(prompt: str) -> str:
    return "q-" + hashlib.sha256(prompt.encode()).hexdigest()[:16]


def splits_of(ids: list[str]) -> dict[str, list[str]]:
    """70/10/20, the queries ordered by a hash of their id (valid and test get one each from 3 queries)."""
    ordered = sorted(ids, key=lambda q: hashlib.sha256(("split:" + q).encode()).hexdigest())
    n = len(ordered)
    n_valid = max(1, round(0.1 * n)) if n >= 3 else 0
    n_test = max(1, round(0.2 * n)) if n >= 3 else 0
    n_train = n - n_valid - n_test
    return {"train": ordered[:n_train], "valid": ordered[n_train:n_train + n_valid],
            "test": ordered[n_train + n_valid:]}


def model_prices(outcomes: list[Outcome], prices: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """suite.json's `models`: the table's price, else one price inferred from the rows' own costs."""
    out: dict[str, dict] = {}
    for model in dict.fromkeys(o.model for o in outcomes):
        if model in prices:
            pin, pout = prices[model]
            out[model] = {"input_usd_per_mtok": pin, "output_usd_per_mtok": pout, "price_source": "price table or flag"}
            continue
        mine = [o for o in outcomes if o.model == model]
        if any(o.cost_usd is None for o in mine):
            path, line = next(o.where for o in mine if o.cost_usd is None)
            raise failure(path, line, "cost", f"model {model!r} has no cost here and no price: pass "
                                              f"--price '{model}=IN,OUT' (USD per million tokens) or --prices FILE")
        tokens = sum(tokens_of(o)[0] + tokens_of(o)[1] for o in mine)
        per_mtok = 1e6 * sum(o.cost_usd for o in mine) / tokens if tokens else 0.0
        out[model] = {"input_usd_per_mtok": per_mtok, "output_usd_per_mtok": per_mtok,
                      "price_source": "inferred from the rows' costs (one price for input and output)"}
    return out


def tokens_of(o: Outcome) -> tuple[int, int]:
    return (o.input_tokens if o.input_tokens is not None else estimate_tokens(o.prompt),
            o.output_tokens if o.output_tokens is not None else 0)


def build(fmt: str, files: list[Path], out: Path, prices: dict[str, tuple[float, float]], name: str | None = None,
          tie_margin: float = 0.0, score_kind: str | None = None) -> dict:
    """Reads `files` in format `fmt`, writes `out`/suite.json and outcomes.jsonl (only a suite that loads,
    see `write`); returns a summary."""
    if fmt not in READERS:
        raise ImportFailure(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not 0 <= tie_margin <= 1:  # the suite reader's rule, checked before any file is read (false for nan)
        raise ImportFailure(f"--tie-margin must be a number in [0, 1], not {tie_margin}")
    if not files:
        raise ImportFailure("no input file")
    outcomes = [o for f in files for o in READERS[fmt](Path(f))]
    if not outcomes:
        raise ImportFailure(f"{', '.join(map(str, files))}: no rows")
    models = model_prices(outcomes, prices)
    if len(models) < 2:
        raise ImportFailure(f"{', '.join(map(str, files))}: rows for {len(models)} model ({', '.join(models)}); "
                            "a suite's pool needs at least two")
    cells: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        cells.setdefault((o.prompt, o.model), []).append(o)
    prompts = list(dict.fromkeys(o.prompt for o in outcomes))
    complete = [p for p in prompts if all((p, m) in cells for m in models)]
    if len(complete) < 3:
        raise ImportFailure(f"{len(complete)} of {len(prompts)} prompts have an outcome for every one of the "
                            f"{len(models)} models ({', '.join(models)}); a suite needs at least 3 (every query has "
                            "a row for every model of the pool)")
    rows = []
    for prompt in complete:
        for model, price in models.items():
            same = cells[(prompt, model)]
            tokens = [tokens_of(o) for o in same]
            tin, tout = round(sum(t[0] for t in tokens) / len(tokens)), round(sum(t[1] for t in tokens) / len(tokens))
            costs = [o.cost_usd for o in same if o.cost_usd is not None]
            cost = sum(costs) / len(costs) if costs else \
                (tin * price["input_usd_per_mtok"] + tout * price["output_usd_per_mtok"]) * 1e-6
            estimated = any(o.input_tokens is None or o.output_tokens is None for o in same)
            rows.append({"query_id": query_id(prompt), "query": prompt, "model": model,
                         "score": sum(o.score for o in same) / len(same), "input_tokens": tin, "output_tokens": tout,
                         "cost_usd": cost, "tokens_estimated": estimated})
    out = Path(out)
    name = name or out.resolve().name  # `--out .` has no name of its own
    meta = {"name": name, "description": f"imported by `tagrouter suite import --format {fmt}` from "
            f"{', '.join(Path(f).name for f in files)}; {len(prompts) - len(complete)} prompts without an outcome for "
            "every model left out; tokens not given estimated as ceil(chars / 4) (output 0 when unknown)",
            "source": ", ".join(str(f) for f in files), "score_kind": score_kind or SCORE_KINDS[fmt],
            "tie_margin": tie_margin, "models": models, "splits": splits_of([query_id(p) for p in complete])}
    write(out, meta, rows)
    return {"suite": str(out), "queries": len(complete), "dropped": len(prompts) - len(complete),
            "models": list(models), "splits": {k: len(v) for k, v in meta["splits"].items()},
            "rows": len(outcomes), "no_output_tokens": sum(o.output_tokens is None for o in outcomes)}


def write(out: Path, meta: dict, rows: list[dict]) -> None:
    """Writes the suite into a folder beside `out`, checks it with the suite reader that fit and eval
    use, then puts its two files in `out`: a suite that would not load is never left there (nor half
    of one), and an older suite in `out` stays whole until then."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (staging / "suite.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        try:
            load_suite(staging)
        except SuiteError as err:
            raise ImportFailure(f"the suite made from {meta['source']} does not load: "
                                f"{str(err).replace(str(staging), str(out))}") from None
        out.mkdir(parents=True, exist_ok=True)
        # outcomes first: suite.json, which names the pool and splits, lands last
        for name in ("outcomes.jsonl", "suite.json"):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
