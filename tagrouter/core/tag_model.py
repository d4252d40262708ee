"""Query -> tags: the encoder, the vocabulary and the selection rule put together.

Used in-process by the tagger service, by `tagrouter fit` and by the evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagrouter.core.encoder import MAX_TOKENS, Encoder
from tagrouter.core.tagging import (
    ATTRIBUTE_TAGS,
    LEVELS,
    TAG_MIN_SCORE,
    TAGS_PER_LEVEL,
    TOPIC_MIN_SCORE,
    align,
    attribute_tags,
    nearest_in_groups,
    normalise_client_tag,
    select_tags,
)
from tagrouter.core.vocabulary import Vocabulary

# Cosine similarity a client tag needs to its nearest prototype to be aligned to it.
CLIENT_TAG_MIN_SIMILARITY = 0.5
ALIGNMENT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class AlignedTag:
    """A client's free-text tag aligned to a canonical tag."""

    client_tag: str
    name: str
    level: str
    score: float  # 1 for an exact name or alias, else the cosine similarity


@dataclass(frozen=True)
class TaggedQuery:
    tags: list[tuple[str, str, float]]  # (name, level, score)
    input_tokens: int
    truncated: bool


def _exact_keys(tag: dict) -> list[str]:
    """Normalised texts that name `tag` exactly: its name, its name without the level, its aliases'."""
    keys = [tag["name"], tag["name"].split(":", 1)[1]]
    for alias in tag.get("aliases", []):
        prefix, _, rest = alias.partition(":")
        keys += [alias, rest] if prefix in LEVELS else [rest]
    return [normalise_client_tag(k) for k in keys]


class TagModel:
    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, per_level: int, min_score: float,
                 client_tag_min_similarity: float = CLIENT_TAG_MIN_SIMILARITY, topic_min_score: float = TOPIC_MIN_SCORE):
        if encoder.dim != vocabulary.prototypes.shape[1]:
            raise ValueError(f"encoder gives {encoder.dim}-d vectors, vocabulary prototypes are "
                             f"{vocabulary.prototypes.shape[1]}-d: rebuild the vocabulary")
        self.encoder = encoder
        self.vocabulary = vocabulary
        self.per_level = per_level
        self.min_score = min_score
        self.topic_min_score = topic_min_score
        self._min_scores = np.array([max(min_score, topic_min_score) if t["level"] == "topic" else min_score
                                     for t in vocabulary.tags])
        self._names = vocabulary.names
        self._levels = [t["level"] for t in vocabulary.tags]
        groups = vocabulary.groups
        grouped = np.concatenate(list(groups.values())) if groups else np.zeros(0, dtype=np.int64)
        # Hand-taxonomy tags go through select_tags; each suite-fitted topic group gives its nearest tag.
        self._plain = np.setdiff1d(np.arange(len(self._names)), grouped)
        self._groups = list(groups.values())
        self._level_of_tag = vocabulary.level_of_tag[self._plain]
        self._prototypes_t = np.ascontiguousarray(vocabulary.prototypes.T)
        self.client_tag_min_similarity = client_tag_min_similarity
        # Exact names: the canonical name, its tail without the level, and every alias, normalised.
        self._exact: dict[str, tuple[str, str]] = {}
        for name in ATTRIBUTE_TAGS:
            self._exact.setdefault(name, (name, "attr"))
        for tag in vocabulary.tags:
            for key in _exact_keys(tag):
                self._exact.setdefault(key, (tag["name"], tag["level"]))
        self._aligned: dict[str, AlignedTag | None] = {}
        self._names_t: np.ndarray | None = None  # embeddings of the tag names, made on first alignment

    @classmethod
    def load(cls, model_dir: Path, vocab_dir: Path | None = None, per_level: int = TAGS_PER_LEVEL,
             min_score: float = TAG_MIN_SCORE, topic_min_score: float = TOPIC_MIN_SCORE,
             intra_op_threads: int = 1) -> TagModel:
        """The encoder in `model_dir` with the vocabulary in `vocab_dir` (default: the packaged one)."""
        from tagrouter import data

        return cls(Encoder(model_dir, intra_op_threads), Vocabulary.load(vocab_dir or data.VOCABULARY_DIR),
                   per_level, min_score, topic_min_score=topic_min_score)

    def tag(self, texts: list[str], per_level: int | None = None) -> list[TaggedQuery]:
        """Tags a batch of texts with one encoder call and one matrix product."""
        encoded = self.encoder.encode(texts)
        return self.tag_encoded(texts, encoded.embeddings, encoded.token_counts, encoded.truncated, per_level)

    def tag_encoded(self, texts, embeddings, token_counts, truncated=None, per_level=None) -> list[TaggedQuery]:
        """Tags texts whose embeddings are already known (evaluation reuses them)."""
        per_level = per_level or self.per_level
        similarity = embeddings @ self._prototypes_t
        results = []
        for row, text in enumerate(texts):
            chosen = select_tags(similarity[row, self._plain], self._level_of_tag, per_level,
                                 self._min_scores[self._plain])
            tags = [(self._names[self._plain[i]], self._levels[self._plain[i]], score) for i, score in chosen]
            tags += [(self._names[i], "topic", float(similarity[row, i]))
                     for i in nearest_in_groups(similarity[row], self._groups)]
            tags += [(name, "attr", 1.0) for name in attribute_tags(text, token_counts[row])]
            cut = truncated[row] if truncated is not None else token_counts[row] > MAX_TOKENS
            results.append(TaggedQuery(tags, token_counts[row], bool(cut)))
        return results

    def align_client_tags(self, client_tags: list[str]) -> list[AlignedTag | None]:
        """Each client tag's canonical tag: an exact name or alias, else the nearest prototype if similar enough.

        One encoder call for the tags neither matched exactly nor seen before (results are cached).
        """
        out: dict[str, AlignedTag | None] = {}
        unseen = []
        for text in dict.fromkeys(client_tags):
            key = normalise_client_tag(text)
            if key in self._exact:
                name, level = self._exact[key]
                out[text] = AlignedTag(text, name, level, 1.0)
            elif key in self._aligned:
                cached = self._aligned[key]
                out[text] = cached and AlignedTag(text, cached.name, cached.level, cached.score)
            else:
                unseen.append(text)
        if unseen:
            if self._names_t is None:
                # A client tag is a short phrase, a prototype the centre of queries: a tag matches a
                # client tag by whichever it is nearer to, its prototype or its name.
                names = [n.split(":", 1)[1].replace("-", " ") for n in self._names]
                self._names_t = np.ascontiguousarray(self.encoder.embed(names).T)
            embeddings = self.encoder.encode(unseen).embeddings
            similarity = np.maximum(embeddings @ self._prototypes_t, embeddings @ self._names_t)
            for text, best in zip(unseen, align(similarity, self.client_tag_min_similarity)):
                found = best and AlignedTag(text, self._names[best[0]], self._levels[best[0]], best[1])
                out[text] = found
                if len(self._aligned) >= ALIGNMENT_CACHE_SIZE:
                    self._aligned.pop(next(iter(self._aligned)))
                self._aligned[normalise_client_tag(text)] = found
        return [out[t] for t in client_tags]

    def tag_many(self, texts: list[str], batch_size: int = 64) -> list[TaggedQuery]:
        """Tags many texts offline (fitting, evaluation), batching texts of similar length."""
        embeddings = self.encoder.embed(texts, batch_size)
        counts = [self.encoder.count_tokens(t) for t in texts]
        return self.tag_encoded(texts, embeddings, counts)
