"""The trained tagger's heads: per level (task, domain, topic) a linear layer and a softmax on the
tagger's features, with the level's calibrated threshold.

The features (`FEATURES`, [n, FEATURE_LAYERS * d], unit length) are the encoder's own layers, each
mean-pooled over the query's tokens and scaled to unit length, concatenated and divided by
sqrt(FEATURE_LAYERS): the sentence embedding is the last of them. The lower layers keep what the
last one averages away (code-heavy maths is still maths there): on the build side, out of fold,
Arena-Hard v2's domain top-1 is .737 with the last layer alone and .866 with all six, its task
top-1 .745 and .842 (`heads.json`'s training record; docs/TAGS.md, "What the heads read").

On disk beside the vocabulary: `heads.npz` (`<level>.weight` [C, width] without its leading all-zero
columns, which `heads.json` counts, and `<level>.bias` [C], float32,
the calibration temperature already folded in) and `heads.json` (per level the C tag names and the
threshold, the version, and the training record of `python -m tagrouter.offline.train_tagger`).
The exported ONNX graph carries the features and the same maths after them
(`tagrouter.dev.tagger_graph`), so serving reads the probabilities from the encoder's own run;
`probabilities` is that maths in numpy, on the graph's features, for a graph exported before these
heads.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADS_JSON = "heads.json"
HEADS_NPZ = "heads.npz"
FEATURES = "tagger_features"  # the graph's output the heads read (tagrouter.dev.tagger_graph)
FEATURE_LAYERS = 6  # MiniLM-L6's six layer outputs, all pooled
OUTPUT_PREFIX = "tag_probs_"  # the graph's output per level: tag_probs_task, ...
METADATA_KEY = "tagrouter.tagger_heads"  # the graph's record of which heads it carries (their version)


@dataclass(frozen=True)
class Head:
    level: str
    names: list[str]  # column c of the probabilities is names[c]
    weight: np.ndarray  # float32 [C, FEATURE_LAYERS * d]
    bias: np.ndarray  # float32 [C]
    threshold: float  # a tag is served only with a probability at least this


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def heads_version(heads: dict[str, Head]) -> str:
    digest = hashlib.sha256()
    for level in sorted(heads):
        h = heads[level]
        digest.update(json.dumps([level, h.names, round(h.threshold, 6)]).encode())
        digest.update(np.ascontiguousarray(h.weight, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(h.bias, dtype="<f4").tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TaggerHeads:
    heads: dict[str, Head]  # level -> head, in LEVELS order
    version: str
    record: dict  # how they were trained and calibrated (heads.json `training`)

    @classmethod
    def build(cls, heads: dict[str, Head], record: dict | None = None) -> TaggerHeads:
        return cls(heads, heads_version(heads), record or {})

    @property
    def width(self) -> int:
        """The features' width the heads were trained on."""
        return int(next(iter(self.heads.values())).weight.shape[1])

    def probabilities(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """level -> [n, C] the head's probabilities for the tagger's `features` [n, width]."""
        return {lv: softmax(features @ h.weight.T + h.bias) for lv, h in self.heads.items()}

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        arrays, skipped = {}, {}
        for lv, h in self.heads.items():
            # a head on the last layer alone is zero on the others: those columns are not stored
            used = np.flatnonzero(h.weight.any(axis=0))
            skipped[lv] = int(used[0]) if used.size else 0
            arrays[f"{lv}.weight"] = np.ascontiguousarray(h.weight[:, skipped[lv]:], dtype="<f4")
            arrays[f"{lv}.bias"] = np.ascontiguousarray(h.bias, dtype="<f4")
        with open(folder / HEADS_NPZ, "wb") as fh:
            np.savez(fh, **arrays)
        doc = {"version": self.version,
               "levels": {lv: {"names": h.names, "threshold": h.threshold, "zero_columns": skipped[lv]}
                          for lv, h in self.heads.items()},
               "training": self.record}
        (folder / HEADS_JSON).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TaggerHeads | None:
        """The heads saved in `folder`, or None when it holds none (a vocabulary without a trained tagger)."""
        folder = Path(folder)
        if not (folder / HEADS_JSON).is_file():
            return None
        doc = json.loads((folder / HEADS_JSON).read_text())
        with np.load(folder / HEADS_NPZ, allow_pickle=False) as arrays:
            heads = {lv: Head(lv, list(spec["names"]),
                              np.pad(arrays[f"{lv}.weight"].astype(np.float32), ((0, 0), (spec.get("zero_columns", 0), 0))),
                              arrays[f"{lv}.bias"].astype(np.float32), float(spec["threshold"]))
                     for lv, spec in doc["levels"].items()}
        for h in heads.values():
            if h.weight.shape[0] != len(h.names) or h.bias.shape != (len(h.names),):
                raise ValueError(f"{folder / HEADS_NPZ}: the {h.level} head's shapes do not match its "
                                 f"{len(h.names)} names; retrain with `make tagger-heads`")
        out = cls.build(heads, doc.get("training"))
        if doc.get("version") != out.version:
            raise ValueError(f"{folder / HEADS_JSON}: version {doc.get('version')} does not match its content "
                             f"({out.version}); retrain with `make tagger-heads`")
        return out
