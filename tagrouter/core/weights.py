"""Weights: the model pool with prices, the scoring parameters and the counts per (tag, model).

One format on disk (JSON, `tagrouter.weights/v1`), one in messages (scorer.v1.Weights);
`validate` is the single check both go through before anything reaches Redis.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tagrouter.core import limits
from tagrouter.core.operating import Calibration
from tagrouter.core.scoring import ALL_QUERIES_TAG, COUNT_FIELDS, ScoringParams
from tagrouter.scorer.v1 import scorer_pb2

FORMAT = "tagrouter.weights/v1"
LEVEL_PARAMS = ("level_weight_domain", "level_weight_topic", "level_weight_attr")
# Parameters optional in the message, with what an unset one means (weights written before they existed)
OPTIONAL_PARAMS = {**dict.fromkeys(LEVEL_PARAMS, 1.0), "length_prior_strength": 0.0}
PLAIN_PARAMS = tuple(f for f in ScoringParams.__dataclass_fields__ if f not in OPTIONAL_PARAMS)
MAX_NAME_LENGTH = 200


def counts_matrix(per_tag: list[dict[str, list[float]]], names: list[str]) -> np.ndarray:
    """[T, M, 5] counts of each tag (a model -> row mapping each) for the pool's models in order
    (0 for a model the tag has not seen, and for a model outside `names`)."""
    out = np.zeros((len(per_tag), len(names), len(COUNT_FIELDS)))
    index = {n: i for i, n in enumerate(names)}
    for t, per_model in enumerate(per_tag):
        for model, row in per_model.items():
            if model in index:
                out[t, index[model]] = row
    return out


class WeightsError(ValueError):
    """Weights that cannot be loaded; the message says where and why."""


@dataclass(frozen=True)
class ModelPrice:
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float


@dataclass
class Weights:
    models: list[ModelPrice]
    params: ScoringParams
    # tag -> model -> [win, tie, loss, answers, output_tokens]
    counts: dict[str, dict[str, list[float]]]
    provenance: str = ""
    version: str = field(default="")
    # The knob's calibration on the fit's selection rows and its recommended point (None in
    # weights written before it existed, or fitted with --no-tune)
    calibration: Calibration | None = None

    def __post_init__(self):
        # Six decimals is what the file keeps: hash what will be written, so a file's version
        # still matches its content once read back.
        self.counts = {tag: {m: [round(float(v), 6) for v in row] for m, row in per.items()}
                       for tag, per in self.counts.items()}
        if not self.version:
            self.version = self.content_hash()

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def content_hash(self) -> str:
        params = asdict(self.params)
        if params["length_prior_strength"] == 0:  # at its default: the hash of weights written before it existed
            del params["length_prior_strength"]
        doc = {"models": [asdict(m) for m in self.models], "params": params, "counts": self.counts}
        if self.calibration is not None:  # absent, the hash of weights written before it existed
            doc["calibration"] = self.calibration.to_dict()
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    # --- JSON file -------------------------------------------------------------------
    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": self.version,
            "provenance": self.provenance,
            "params": asdict(self.params),
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
            "models": [asdict(m) for m in self.models],
            "count_fields": list(COUNT_FIELDS),
            "counts": {tag: {m: row for m, row in sorted(per_model.items())}
                       for tag, per_model in sorted(self.counts.items())},
        }
        text = json.dumps(doc, indent=1)
        # One line per count row keeps the file short and its diffs readable.
        return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)  # never a half-written file

    @classmethod
    def load(cls, path: Path) -> Weights:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise WeightsError(f"{path}: no such weights file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise WeightsError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise WeightsError(f"{path}: key 'format' must be {FORMAT!r}")
        try:
            weights = cls(
                models=[ModelPrice(m["name"], float(m["input_usd_per_mtok"]), float(m["output_usd_per_mtok"]))
                        for m in doc["models"]],
                params=ScoringParams(**doc["params"]),
                counts={tag: {m: [float(v) for v in row] for m, row in per.items()}
                        for tag, per in doc["counts"].items()},
                provenance=str(doc.get("provenance", "")),
                version=str(doc.get("version", "")),
                calibration=Calibration.from_dict(doc["calibration"]) if doc.get("calibration") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise WeightsError(f"{path}: malformed weights ({type(err).__name__}: {err})") from None
        validate(weights, source=str(path))
        return weights

    # --- messages --------------------------------------------------------------------
    def to_proto(self) -> scorer_pb2.Weights:
        return scorer_pb2.Weights(
            version=self.version,
            provenance=self.provenance,
            models=[scorer_pb2.Model(name=m.name, input_usd_per_mtok=m.input_usd_per_mtok,
                                     output_usd_per_mtok=m.output_usd_per_mtok) for m in self.models],
            params=scorer_pb2.ScoringParams(**asdict(self.params)),
            counts=[scorer_pb2.TagCount(tag=tag, model=model, **dict(zip(COUNT_FIELDS, row)))
                    for tag, per in self.counts.items() for model, row in per.items()],
            calibration=self.calibration.to_proto() if self.calibration is not None else None,
        )

    @classmethod
    def from_proto(cls, msg: scorer_pb2.Weights) -> Weights:
        counts: dict[str, dict[str, list[float]]] = {}
        for c in msg.counts:
            if c.model in counts.get(c.tag, {}):
                raise WeightsError(f"counts: tag {c.tag!r}, model {c.model!r} appears twice")
            row = [getattr(c, f) for f in COUNT_FIELDS]
            # checked before rounding to the file's six decimals turns a tiny negative into -0.0
            problem = limits.count_row_problem(row)
            if problem is not None:
                raise WeightsError(f"counts: tag {c.tag!r}, model {c.model!r}: {problem}")
            counts.setdefault(c.tag, {})[c.model] = row
        params = ScoringParams(**{f: getattr(msg.params, f) for f in PLAIN_PARAMS},
                               # optional in the message: unset in weights written before they existed
                               **{f: getattr(msg.params, f) if msg.params.HasField(f) else unset
                                  for f, unset in OPTIONAL_PARAMS.items()}) \
            if msg.HasField("params") else ScoringParams()
        weights = cls(
            models=[ModelPrice(m.name, m.input_usd_per_mtok, m.output_usd_per_mtok) for m in msg.models],
            params=params, counts=counts, provenance=msg.provenance, version=msg.version,
            calibration=Calibration.from_proto(msg.calibration) if msg.HasField("calibration") else None,
        )
        validate(weights, source="weights")
        return weights


def estimated_bytes(weights: Weights) -> int:
    """An upper bound of the counts' size as one scorer.v1.Weights message: what Feedback adds
    to (services/scorer/store.py keeps the same sum) and limits.MAX_WEIGHTS_BYTES bounds."""
    return sum(len(tag.encode()) + len(model.encode()) + limits.CELL_BYTES
               for tag, per in weights.counts.items() for model in per)


def validate_name(kind: str, name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH or "|" in name or not name.isprintable():
        raise WeightsError(f"{kind} name {limits.shown(name)} must be 1-{MAX_NAME_LENGTH} printable characters without '|'")


def validate_pool(models: list[ModelPrice], params: ScoringParams, source: str) -> None:
    """The models, their prices and the scoring parameters (also checked when read back from Redis)."""
    names = [m.name for m in models]
    if len(names) < 1:
        raise WeightsError(f"{source}: the model pool is empty")
    if len(names) > limits.MAX_MODELS:
        raise WeightsError(f"{source}: models: {len(names)} models, at most {limits.MAX_MODELS}")
    if len(set(names)) != len(names):
        raise WeightsError(f"{source}: models: duplicate model names")
    for m in models:
        validate_name("model", m.name)
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            price = getattr(m, key)
            if not math.isfinite(price) or not 0 <= price <= limits.MAX_PRICE_USD_PER_MTOK:
                raise WeightsError(f"{source}: models: {m.name}: {key} must be a finite price >= 0 and at most "
                                   f"{limits.MAX_PRICE_USD_PER_MTOK:g}, not {price}")
    p = params
    for key, value in asdict(p).items():
        if not math.isfinite(value) or abs(value) > limits.MAX_PARAM:
            raise WeightsError(f"{source}: params: {key} must be finite and at most {limits.MAX_PARAM:g} in size")
    if p.prior_strength <= 0:
        raise WeightsError(f"{source}: params: prior_strength must be > 0")
    if p.tag_evidence < 0:
        raise WeightsError(f"{source}: params: tag_evidence must be >= 0 (0: off)")
    if p.cost_scale_usd < 0 or 0 < p.cost_scale_usd < limits.MIN_COST_SCALE_USD:  # a cost over 1e-320 is inf
        raise WeightsError(f"{source}: params: cost_scale_usd must be 0 (cost relative to the priciest) or at least "
                           f"{limits.MIN_COST_SCALE_USD:g} USD, not {p.cost_scale_usd:g}")
    if p.length_prior_strength < 0:
        raise WeightsError(f"{source}: params: length_prior_strength must be >= 0 (0: prior_strength)")
    for key in LEVEL_PARAMS:
        if getattr(p, key) < 0:
            raise WeightsError(f"{source}: params: {key} must be >= 0 (0: the level's tags are ignored)")


def validate_calibration(calibration: Calibration | None, source: str) -> None:
    problem = calibration.problem() if calibration is not None else None
    if problem is not None:
        raise WeightsError(f"{source}: calibration: {problem}")


def validate(weights: Weights, source: str) -> None:
    """Raises WeightsError naming the first problem; nothing is loaded until this passes."""
    try:  # it names Redis keys and log lines
        validate_name("version", weights.version)
    except WeightsError as err:
        raise WeightsError(f"{source}: {err}") from None
    validate_pool(weights.models, weights.params, source)
    validate_calibration(weights.calibration, source)
    names = weights.model_names
    if ALL_QUERIES_TAG not in weights.counts:
        raise WeightsError(f"{source}: counts: the all-queries tag {ALL_QUERIES_TAG!r} is missing")
    if len(weights.counts) > limits.MAX_TAGS_TOTAL + 1:  # + the all-queries tag
        raise WeightsError(f"{source}: counts: {len(weights.counts) - 1} tags, at most {limits.MAX_TAGS_TOTAL} "
                           "(MAX_TAGS_TOTAL)")
    size = estimated_bytes(weights)
    if size > limits.MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{source}: counts: about {size} bytes as a message, at most {limits.MAX_WEIGHTS_BYTES} "
                           "(MAX_WEIGHTS_BYTES)")
    pool = set(names)
    for tag, per_model in weights.counts.items():
        if tag != ALL_QUERIES_TAG:
            validate_name("tag", tag)
        for model, row in per_model.items():
            if model not in pool:
                raise WeightsError(f"{source}: counts: tag {tag!r} names model {model!r} outside the pool")
            problem = limits.count_row_problem(row)
            if problem is not None:
                raise WeightsError(f"{source}: counts: tag {tag!r}, model {model!r}: {problem}")


HEADS_TAGGER, PROTOTYPE_TAGGER = "tagger heads", "prototype tagger"


def tagger_name(heads_version: str | None) -> str:
    """A tagger as `tagrouter fit` names it in the provenance (and `tagrouter tag` prints it): the trained
    heads of that version, or (None) the prototype tagger. `tagger_mismatch` reads it back."""
    return f"{HEADS_TAGGER} {heads_version}" if heads_version else PROTOTYPE_TAGGER


def tagger_mismatch(provenance: str, heads: bool) -> str | None:
    """Why weights whose provenance names the tagger that fitted them (`tagrouter fit`) mean little
    behind the other one (`heads`: the trained heads serve); None when they agree or it is not named."""
    fitted = True if f"{HEADS_TAGGER} " in provenance else False if PROTOTYPE_TAGGER in provenance else None
    if fitted is None or fitted == heads:
        return None
    return (f"these weights were fitted on the {'trained heads' if fitted else 'prototype tagger'}'s tags, but the "
            f"tagger serves the {'trained heads' if heads else 'prototype tagger'} (TAGROUTER_TAGGER_HEADS="
            f"{'true' if heads else 'false'}): its tags are counted as another tagger gave them. Load the matching "
            f"starter weights (tagrouter/data/starter_weights{'_heads' if heads else ''}.json) or refit with the "
            "served tagger")
