"""Query -> tags: the encoder, the vocabulary and the selection rule put together.

Used in-process by the tagger service, by `tagrouter fit` and by the evaluation.

With the trained heads (`tagrouter.core.tag_heads`, saved beside the vocabulary) a level's tag is
its head's top tag when the calibrated probability reaches the level's threshold, else the level
says nothing (the router backs off to coarser tags and the prior). Served, the probabilities come
from the encoder's own run (the heads are in its graph); from a graph carrying other heads, the
same maths in numpy on the graph's features. Levels without a head, a vocabulary without heads,
and the suite-fitted topic groups use the prototypes (nearest by cosine), as do client tags.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagrouter.core.encoder import MAX_TOKENS, Encoded, Encoder
from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.core.tagging import (
    ATTRIBUTE_TAGS,
    LEVELS,
    TAG_MIN_SCORE,
    TAGS_PER_LEVEL,
    TOPIC_MIN_SCORE,
    align,
    attribute_tags,
    level_members,
    nearest_in_groups,
    normalise_client_tag,
    select_in_levels,
)
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.core.weights import tagger_name

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
class Abstention:
    """A level whose head said nothing: its top tag and that tag's probability, below the threshold."""

    level: str
    top: str
    probability: float
    threshold: float


@dataclass(frozen=True)
class TaggedQuery:
    tags: list[tuple[str, str, float]]  # (name, level, score)
    input_tokens: int
    truncated: bool
    abstained: tuple[Abstention, ...] = ()  # the heads' levels that said nothing (`tagrouter tag` prints why)


def _exact_keys(tag: dict) -> list[str]:
    """Normalised texts that name `tag` exactly: its name, its name without the level, its aliases'."""
    keys = [tag["name"], tag["name"].split(":", 1)[1]]
    for alias in tag.get("aliases", []):
        prefix, _, rest = alias.partition(":")
        keys += [alias, rest] if prefix in LEVELS else [rest]
    return [normalise_client_tag(k) for k in keys]


class TagModel:
    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, per_level: int, min_score: float,
                 client_tag_min_similarity: float = CLIENT_TAG_MIN_SIMILARITY, topic_min_score: float = TOPIC_MIN_SCORE,
                 heads: TaggerHeads | None = None):
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
        self.heads = heads
        self._head_levels = self._check_heads(heads, vocabulary)
        by_head = [i for i, lv in enumerate(self._levels) if lv in self._head_levels]
        # Tags of a level with a head are its; other hand-taxonomy tags go through select_tags; each
        # suite-fitted topic group gives its nearest tag.
        self._plain = np.setdiff1d(np.arange(len(self._names)), np.concatenate([grouped, by_head]).astype(np.int64))
        self._groups = list(groups.values())
        self._level_of_tag = vocabulary.level_of_tag[self._plain]
        self._level_members = level_members(self._level_of_tag)
        self._plain_min_scores = self._min_scores[self._plain]
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

    def _check_heads(self, heads: TaggerHeads | None, vocabulary: Vocabulary) -> dict[str, tuple[list[str], float]]:
        """level -> (tag names, threshold) of the heads whose level the vocabulary has; every name must be in it."""
        if heads is None:
            return {}
        known = set(self._names)
        out = {}
        for level, head in heads.heads.items():
            if level not in self._levels:
                continue  # a vocabulary restricted to other levels (ablations)
            missing = [n for n in head.names if n not in known]
            if missing:
                raise ValueError(f"the tagger's {level} head names tags the vocabulary {vocabulary.version} lacks "
                                 f"({', '.join(missing[:3])}): retrain it with `make tagger-heads`")
            out[level] = (head.names, head.threshold)
        if out and self.encoder.feature_width != heads.width:
            # caught here, not at the first query: a service that starts must be able to tag
            raise ValueError(f"the tagger heads {heads.version} read {heads.width} features, the encoder graph "
                             f"{self.encoder.model_path} gives {self.encoder.feature_width or 'none'}: "
                             "run `make model` (and `make tagger-heads` if the heads are older than the graph)")
        if out and self.encoder.heads_version != heads.version:
            logging.getLogger(__name__).warning(
                "the encoder graph carries %s, not the tagger heads %s: their probabilities are computed after it "
                "(run `make model` to put them in the graph)", self.encoder.heads_version or "no heads", heads.version)
        return out

    @classmethod
    def load(cls, model_dir: Path, vocab_dir: Path | None = None, per_level: int = TAGS_PER_LEVEL,
             min_score: float = TAG_MIN_SCORE, topic_min_score: float = TOPIC_MIN_SCORE,
             intra_op_threads: int = 1, use_heads: bool = False) -> TagModel:
        """The encoder in `model_dir` with the vocabulary in `vocab_dir` (default: the packaged one) and,
        when use_heads and the vocabulary has them (`heads.json`), the heads trained for it. Without,
        the prototype tagger: each level's nearest prototypes. The default stays the prototype tagger
        until the starter weights route visibly with the heads' tags (docs/TAGS.md)."""
        from tagrouter import data

        folder = vocab_dir or data.VOCABULARY_DIR
        return cls(Encoder(model_dir, intra_op_threads), Vocabulary.load(folder), per_level, min_score,
                   topic_min_score=topic_min_score, heads=TaggerHeads.load(folder) if use_heads else None)

    @property
    def kind(self) -> str:
        """Which tagger this is, as the CLI prints it and fitted weights record it."""
        return tagger_name(self.heads.version if self.heads is not None else None)

    def with_vocabulary(self, vocabulary: Vocabulary, per_level: int | None = None) -> TagModel:
        """The same tagger (encoder, heads, settings) over another vocabulary (restricted, suite topics)."""
        return TagModel(self.encoder, vocabulary, per_level or self.per_level, self.min_score,
                        self.client_tag_min_similarity, self.topic_min_score, self.heads)

    def tag(self, texts: list[str], per_level: int | None = None) -> list[TaggedQuery]:
        """Tags a batch of texts with one encoder call (which runs the heads in the graph)."""
        encoded = self.encode(texts)
        return self.tag_encoded(texts, encoded.embeddings, encoded.token_counts, encoded.truncated, per_level,
                                encoded.tag_probs, encoded.features)

    def encode(self, texts: list[str]) -> Encoded:
        """One encoder call with what this tagger needs: the graph's head probabilities when it carries
        these heads, else (with heads) the features to compute them from."""
        heads = self.heads is not None
        return self.encoder.encode(texts, heads=heads, features=heads and not self._graph_has_heads)

    @property
    def _graph_has_heads(self) -> bool:
        return self.heads is not None and self.encoder.heads_version == self.heads.version

    def head_probabilities(self, texts: list[str], probs: dict | None = None,
                           features: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The heads' probabilities: the graph's when it carries these heads, else computed from the
        graph's features (`features`, or the texts encoded again for them)."""
        if not self._head_levels or not len(texts):
            return {}
        if probs is None or not self._graph_has_heads:
            if features is None:
                features = self.encoder.embed_with_features(texts)[1]
            probs = self.heads.probabilities(features)
        return probs

    def tag_encoded(self, texts, embeddings, token_counts, truncated=None, per_level=None,
                    probs=None, features=None) -> list[TaggedQuery]:
        """Tags texts whose embeddings (and, from the graph, the heads' probabilities or their input
        features) are already known; without either, the heads need the texts encoded again."""
        per_level = per_level or self.per_level
        probs = self.head_probabilities(texts, probs, features)
        similarity = embeddings @ self._prototypes_t if self._plain.size or self._groups else None
        results = []
        for row, text in enumerate(texts):
            tags, abstained = [], []
            for level, (names, threshold) in self._head_levels.items():
                best = int(np.argmax(probs[level][row]))
                top = float(probs[level][row, best])
                if top >= threshold:  # one tag per level: the softmax names one
                    tags.append((names[best], level, top))
                else:
                    abstained.append(Abstention(level, names[best], top, threshold))
            if self._plain.size:
                chosen = select_in_levels(similarity[row, self._plain], self._level_members, per_level,
                                          self._plain_min_scores)
                tags += [(self._names[self._plain[i]], self._levels[self._plain[i]], score) for i, score in chosen]
            if self._groups:
                tags += [(self._names[i], "topic", float(similarity[row, i]))
                         for i in nearest_in_groups(similarity[row], self._groups)]
            tags += [(name, "attr", 1.0) for name in attribute_tags(text, token_counts[row])]
            cut = truncated[row] if truncated is not None else token_counts[row] > MAX_TOKENS
            results.append(TaggedQuery(tags, token_counts[row], bool(cut), tuple(abstained)))
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
            embeddings = self.encoder.encode(unseen, heads=False).embeddings
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
        embeddings, features = self.encoder.embed_with_features(texts, batch_size, features=bool(self._head_levels))
        counts = [self.encoder.count_tokens(t) for t in texts]
        return self.tag_encoded(texts, embeddings, counts, features=features)
