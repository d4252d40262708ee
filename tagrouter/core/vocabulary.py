"""The canonical tag vocabulary: names, levels, descriptions and prototype vectors.

On disk: `tags.json` (names, levels, descriptions, version) and `prototypes.npy`
(float32 [tags, dim], unit rows). The version is a content hash of both, so a response
says exactly which vocabulary tagged it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagrouter.core.tagging import ATTRIBUTE_TAGS, LEVELS

TAGS_FILE = "tags.json"
PROTOTYPES_FILE = "prototypes.npy"


def content_version(tags: list[dict], prototypes: np.ndarray, build: dict | None = None) -> str:
    """Hash of the tag list, prototype bytes and build record: the vocabulary's version."""
    digest = hashlib.sha256(json.dumps(tags, sort_keys=True, ensure_ascii=False).encode())
    if build:
        digest.update(json.dumps(build, sort_keys=True, ensure_ascii=False).encode())
    digest.update(np.ascontiguousarray(prototypes, dtype="<f4").tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Vocabulary:
    tags: list[dict]  # each {"name", "level", "description", "aliases"?}; row i of prototypes is tags[i]
    prototypes: np.ndarray  # float32 [T, dim]
    version: str
    build_info: dict | None = None  # input file hashes and build parameters (`tagrouter vocab build`)

    @property
    def names(self) -> list[str]:
        return [t["name"] for t in self.tags]

    @property
    def level_of_tag(self) -> np.ndarray:
        return np.array([LEVELS.index(t["level"]) for t in self.tags], dtype=np.int64)

    @property
    def groups(self) -> dict[str, np.ndarray]:
        """Topic group -> row indices: suite-fitted clusters, one tag per group and query."""
        out: dict[str, list[int]] = {}
        for i, t in enumerate(self.tags):
            if t.get("group"):
                out.setdefault(t["group"], []).append(i)
        return {g: np.array(rows, dtype=np.int64) for g, rows in out.items()}

    def without_groups(self) -> Vocabulary:
        """The vocabulary without suite-fitted topic groups (the hand taxonomy only)."""
        keep = [i for i, t in enumerate(self.tags) if not t.get("group")]
        return Vocabulary.build([self.tags[i] for i in keep], self.prototypes[keep])

    def with_topics(self, centroids: dict[int, np.ndarray], source: str) -> Vocabulary:
        """This vocabulary plus one group of topic tags per granularity K (`topic:k<K>-<i>`)."""
        base = self.without_groups()
        tags, rows = list(base.tags), [base.prototypes]
        for k, c in centroids.items():
            tags += [{"name": f"topic:k{k}-{i}", "level": "topic", "group": f"k{k}",
                      "description": f"cluster {i} of {k} of the training queries of {source}"} for i in range(len(c))]
            rows.append(np.asarray(c, dtype=np.float32))
        return Vocabulary.build(tags, np.concatenate(rows))

    @property
    def all_names(self) -> list[str]:
        """Every tag the tagger can emit: prototype tags and attribute tags."""
        return self.names + list(ATTRIBUTE_TAGS)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"version": self.version, "tags": self.tags}
        if self.build_info:
            doc["build"] = self.build_info
        (folder / TAGS_FILE).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        with open(folder / PROTOTYPES_FILE, "wb") as fh:
            np.save(fh, np.ascontiguousarray(self.prototypes, dtype="<f4"), allow_pickle=False)

    @classmethod
    def build(cls, tags: list[dict], prototypes: np.ndarray, build_info: dict | None = None) -> Vocabulary:
        prototypes = np.ascontiguousarray(prototypes, dtype=np.float32)
        return cls(tags=tags, prototypes=prototypes, version=content_version(tags, prototypes, build_info),
                   build_info=build_info)

    def restricted(self, levels) -> Vocabulary:
        """The vocabulary with the tags of `levels` only (ablations)."""
        keep = [i for i, t in enumerate(self.tags) if t["level"] in levels]
        return Vocabulary.build([self.tags[i] for i in keep], self.prototypes[keep], self.build_info)

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        folder = Path(folder)
        try:
            doc = json.loads((folder / TAGS_FILE).read_text())
            prototypes = np.load(folder / PROTOTYPES_FILE, allow_pickle=False)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err.filename} is missing: run `tagrouter vocab build`") from None
        tags = doc["tags"]
        if prototypes.shape[0] != len(tags):
            raise ValueError(f"{folder}: {len(tags)} tags but {prototypes.shape[0]} prototypes")
        for tag in tags:
            if tag.get("level") not in LEVELS:
                raise ValueError(f"{folder / TAGS_FILE}: tag {tag.get('name')!r} has unknown level {tag.get('level')!r}")
        vocab = cls.build(tags, prototypes, doc.get("build"))
        if doc.get("version") != vocab.version:
            raise ValueError(f"{folder / TAGS_FILE}: version {doc.get('version')} does not match its content "
                             f"({vocab.version}); rebuild with `tagrouter vocab build`")
        return vocab
