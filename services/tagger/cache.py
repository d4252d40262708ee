"""The tagger's exact-match tag cache: a bounded LRU keyed by a hash of the normalised query.

Why in the tagger and not the router: a query's tags are a pure function of its text, the
model and the vocabulary, and the tagger process holds both for its whole life. A cached
entry can therefore never be stale (a new model or vocabulary means a new process and an
empty cache), and every router replica shares the hits. A router-side cache would also
save the Tag hop, but could serve tags of an old vocabulary through a tagger rollout.

Normalisation is deliberately only the removal of surrounding whitespace: the tokenizer
ignores it and no surface-attribute rule depends on it, so two queries share an entry only
when the tagger would give them the same answer. Case, inner whitespace and Unicode form
can change the attribute rules (code, lists), so they are kept.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


def normalise(query: str) -> str:
    return query.strip()


def cache_key(query: str) -> bytes:
    """16-byte BLAKE2b of the normalised query: fixed-size keys whatever the query length."""
    return hashlib.blake2b(normalise(query).encode("utf-8", "surrogatepass"), digest_size=16).digest()


class TagCache(Generic[V]):
    """Least-recently-used map from a query's key to its tags, at most `size` entries (0: off)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: V) -> None:
        if self.size <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
