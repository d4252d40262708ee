"""Query -> tags: the encoder, the vocabulary and the selection rule put together.

Used in-process by the tagger service, by `tagrouter fit` and by the evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.tagger.encoder import MAX_TOKENS, Encoder
from services.tagger.tagging import attribute_tags, nearest_in_groups, select_tags
from services.tagger.vocabulary import Vocabulary


@dataclass(frozen=True)
class TaggedQuery:
    tags: list[tuple[str, str, float]]  # (name, level, score)
    input_tokens: int
    truncated: bool


class Tagger:
    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, per_level: int, min_score: float):
        if encoder.dim != vocabulary.prototypes.shape[1]:
            raise ValueError(f"encoder gives {encoder.dim}-d vectors, vocabulary prototypes are "
                             f"{vocabulary.prototypes.shape[1]}-d: rebuild the vocabulary")
        self.encoder = encoder
        self.vocabulary = vocabulary
        self.per_level = per_level
        self.min_score = min_score
        self._names = vocabulary.names
        self._levels = [t["level"] for t in vocabulary.tags]
        groups = vocabulary.groups
        grouped = np.concatenate(list(groups.values())) if groups else np.zeros(0, dtype=np.int64)
        # Hand-taxonomy tags go through select_tags; each suite-fitted topic group gives its nearest tag.
        self._plain = np.setdiff1d(np.arange(len(self._names)), grouped)
        self._groups = list(groups.values())
        self._level_of_tag = vocabulary.level_of_tag[self._plain]
        self._prototypes_t = np.ascontiguousarray(vocabulary.prototypes.T)

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
            chosen = select_tags(similarity[row, self._plain], self._level_of_tag, per_level, self.min_score)
            tags = [(self._names[self._plain[i]], self._levels[self._plain[i]], score) for i, score in chosen]
            tags += [(self._names[i], "topic", float(similarity[row, i]))
                     for i in nearest_in_groups(similarity[row], self._groups)]
            tags += [(name, "attr", 1.0) for name in attribute_tags(text, token_counts[row])]
            cut = truncated[row] if truncated is not None else token_counts[row] > MAX_TOKENS
            results.append(TaggedQuery(tags, token_counts[row], bool(cut)))
        return results

    def tag_many(self, texts: list[str], batch_size: int = 64) -> list[TaggedQuery]:
        """Tags many texts offline (fitting, evaluation), batching texts of similar length."""
        embeddings = self.encoder.embed(texts, batch_size)
        counts = [self.encoder.count_tokens(t) for t in texts]
        return self.tag_encoded(texts, embeddings, counts)
