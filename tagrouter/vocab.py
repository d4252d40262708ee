"""`tagrouter vocab build`: the canonical tag vocabulary, built reproducibly.

Each tag's prototype is the normalised mean embedding of its description and example
queries, embedded with the served int8 encoder.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from services.tagger.encoder import Encoder
from services.tagger.tagging import LEVELS
from services.tagger.vocabulary import Vocabulary

TAXONOMY_FILE = Path(__file__).resolve().parents[1] / "services" / "tagger" / "taxonomy.json"


class VocabularyError(ValueError):
    """An input of the build is unusable; the message names the file."""


def read_taxonomy(path: Path) -> list[dict]:
    try:
        doc = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise VocabularyError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise VocabularyError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise VocabularyError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(tags, list) or not tags:
        raise VocabularyError(f"{path}: key 'tags' must be a non-empty list")
    seen = set()
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not all(isinstance(tag.get(k), str) and tag[k].strip()
                                                for k in ("name", "level", "description")):
            raise VocabularyError(f"{path}: tags[{i}] needs non-empty 'name', 'level' and 'description'")
        if tag["level"] not in LEVELS or tag["level"] == "attr":
            raise VocabularyError(f"{path}: tags[{i}] ({tag['name']}): level must be task, domain or topic")
        if not tag["name"].startswith(tag["level"] + ":"):
            raise VocabularyError(f"{path}: tags[{i}]: name {tag['name']!r} must start with '{tag['level']}:'")
        if tag["name"] in seen:
            raise VocabularyError(f"{path}: tags[{i}]: duplicate name {tag['name']!r}")
        seen.add(tag["name"])
    return tags


def build_vocabulary(encoder: Encoder, taxonomy: Path = TAXONOMY_FILE) -> Vocabulary:
    entries = read_taxonomy(taxonomy)
    prototypes = np.zeros((len(entries), encoder.dim), dtype=np.float32)
    for i, entry in enumerate(entries):
        texts = [entry["description"], *entry.get("examples", [])]
        mean = encoder.embed(texts).mean(axis=0)
        prototypes[i] = mean / np.linalg.norm(mean)
    tags = [{"name": e["name"], "level": e["level"], "description": e["description"]} for e in entries]
    # Round so the artifact is byte-identical across CPUs whose int8 kernels differ in the last bits.
    return Vocabulary.build(tags, np.round(prototypes, 4))
