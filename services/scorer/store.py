"""The Redis key schema and every Redis operation of the scorer: the one place for both.

Keys (version = "<weights version>.<load sequence>"):
    tagrouter:active                       string: the version Score reads
    tagrouter:seq                          counter: load sequence
    tagrouter:w:<version>:meta             hash: models (JSON), params (JSON), provenance, feedback (count)
    tagrouter:w:<version>:tags             set: tag names of that version
    tagrouter:w:<version>:tag:<tag>        hash: "<model>|<field>" -> count
    tagrouter:feedback:<id>                string: a Feedback id already counted (kept 7 days)
    tagrouter:generation                   counter: +1 at every load and every counted feedback

A load writes a new version beside the active one and switches `tagrouter:active` only once
every key is written, so a load that fails half-way leaves the previous weights serving.
Score reads the active version and all of a query's tag hashes in one script call: one
round trip, and never a mix of two versions. Feedback adds one judged outcome to the active
version's hashes in one script call too: no reader ever sees half of it. Both bump
`tagrouter:generation` in the same step, so a watcher that reads (active, generation) knows
whether the weights it copied are still current (WatchWeights).
"""
from __future__ import annotations

import json
from dataclasses import asdict

import redis.asyncio as aioredis

from tagrouter.core.scoring import ALL_QUERIES_TAG, COUNT_FIELDS, ScoringParams
from tagrouter.core.weights import ModelPrice, Weights

PREFIX = "tagrouter"
ACTIVE_KEY = f"{PREFIX}:active"
SEQ_KEY = f"{PREFIX}:seq"
GENERATION_KEY = f"{PREFIX}:generation"
WRITE_CHUNK = 500  # hashes per pipeline when loading


def version_prefix(version: str) -> str:
    return f"{PREFIX}:w:{version}"


def meta_key(version: str) -> str:
    return f"{version_prefix(version)}:meta"


def tags_key(version: str) -> str:
    return f"{version_prefix(version)}:tags"


def tag_key(version: str, tag: str) -> str:
    return f"{version_prefix(version)}:tag:{tag}"


def count_field(model: str, name: str) -> str:
    return f"{model}|{name}"


# KEYS: none (the keys depend on the active version, read inside). ARGV: tag names.
# Returns {version, hash1, hash2, ...} with each hash as a flat field/value list.
_READ_TAGS = """
local version = redis.call('GET', 'tagrouter:active')
if not version then return {false} end
local out = {version}
for i, tag in ipairs(ARGV) do
  out[i + 1] = redis.call('HGETALL', 'tagrouter:w:' .. version .. ':tag:' .. tag)
end
return out
"""


# One judged outcome counted into the active version, all or nothing (a script runs atomically).
# KEYS: none (the version is read inside). ARGV: model, outcome field, output tokens ('' = keep
# the cell's mean length), feedback id ('' = none), then tag names. Returns {version, 1, 0},
# {version, 1, 1} when that id was counted before (a retry: nothing is added), {version, 0}
# when the model is not in the pool, {false} when nothing is loaded.
_FEEDBACK = """
local version = redis.call('GET', 'tagrouter:active')
if not version then return {false} end
local base = 'tagrouter:w:' .. version
local models = cjson.decode(redis.call('HGET', base .. ':meta', 'models') or '[]')
local known = false
for _, m in ipairs(models) do
  if m.name == ARGV[1] then known = true end
end
if not known then return {version, 0} end
if ARGV[4] ~= '' and not redis.call('SET', 'tagrouter:feedback:' .. ARGV[4], version, 'NX', 'EX', 604800) then
  return {version, 1, 1}
end
local model = ARGV[1]
for i = 5, #ARGV do
  local key = base .. ':tag:' .. ARGV[i]
  local answers = tonumber(redis.call('HGET', key, model .. '|answers') or '0')
  local tokens = tonumber(redis.call('HGET', key, model .. '|output_tokens') or '0')
  local length = tonumber(ARGV[3])
  if not length then
    if answers > 0 then length = tokens / answers else length = 0 end
  end
  redis.call('HINCRBYFLOAT', key, model .. '|' .. ARGV[2], 1)
  redis.call('HINCRBYFLOAT', key, model .. '|answers', 1)
  redis.call('HINCRBYFLOAT', key, model .. '|output_tokens', length)
  for _, field in ipairs({'win', 'tie', 'loss'}) do
    redis.call('HINCRBYFLOAT', key, model .. '|' .. field, 0)
  end
  redis.call('SADD', base .. ':tags', ARGV[i])
end
redis.call('HINCRBY', base .. ':meta', 'feedback', 1)
redis.call('INCR', 'tagrouter:generation')
return {version, 1, 0}
"""
_FIELD_POSITION = {name: i for i, name in enumerate(COUNT_FIELDS)}


def parse_tag_hash(flat: list[str]) -> dict[str, list[float]]:
    """A tag hash's flat [field, value, ...] list -> model -> counts in COUNT_FIELDS order."""
    per_model: dict[str, list[float]] = {}
    position = _FIELD_POSITION
    for key, value in zip(flat[::2], flat[1::2]):
        model, _, name = key.rpartition("|")
        i = position.get(name)
        if i is not None:
            row = per_model.get(model)
            if row is None:
                row = per_model[model] = [0.0] * len(COUNT_FIELDS)
            row[i] = float(value)
    return per_model


class WeightStore:
    """Weights in Redis: load, read a query's tags, read back."""

    def __init__(self, client: aioredis.Redis):
        self.redis = client
        self._read_tags = client.register_script(_READ_TAGS)
        self._feedback = client.register_script(_FEEDBACK)

    @classmethod
    def from_url(cls, url: str) -> WeightStore:
        return cls(aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2,
                                           socket_timeout=2, health_check_interval=10))

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def active_version(self) -> str | None:
        return await self.redis.get(ACTIVE_KEY)

    async def change_marker(self) -> tuple[str | None, int]:
        """(active version, generation): changes whenever the weights Score would read change."""
        version, generation = await self.redis.mget(ACTIVE_KEY, GENERATION_KEY)
        return version, int(generation or 0)

    async def load(self, weights: Weights) -> str:
        """Writes `weights` as a new version, then makes it the active one. Returns the version."""
        seq = await self.redis.incr(SEQ_KEY)
        version = f"{weights.version}.{seq}"
        try:
            tags = list(weights.counts.items())
            for start in range(0, len(tags), WRITE_CHUNK):
                pipe = self.redis.pipeline(transaction=False)
                for tag, per_model in tags[start : start + WRITE_CHUNK]:
                    mapping = {count_field(m, f): v for m, row in per_model.items() for f, v in zip(COUNT_FIELDS, row)}
                    if mapping:
                        pipe.hset(tag_key(version, tag), mapping=mapping)
                pipe.sadd(tags_key(version), *[t for t, _ in tags[start : start + WRITE_CHUNK]])
                await pipe.execute()
            await self.redis.hset(meta_key(version), mapping={
                "models": json.dumps([asdict(m) for m in weights.models]),
                "params": json.dumps(asdict(weights.params)),
                "provenance": weights.provenance,
                "source_version": weights.version,
            })
            pipe = self.redis.pipeline(transaction=True)  # switch and announce in one step
            pipe.getset(ACTIVE_KEY, version)
            pipe.incr(GENERATION_KEY)
            previous, _ = await pipe.execute()
        except BaseException:
            await self._delete_version(version)
            raise
        if previous and previous != version:
            await self._delete_version(previous)
        return version

    async def _delete_version(self, version: str) -> None:
        tags = await self.redis.smembers(tags_key(version))
        keys = [tag_key(version, t) for t in tags] + [tags_key(version), meta_key(version)]
        for start in range(0, len(keys), WRITE_CHUNK):
            await self.redis.unlink(*keys[start : start + WRITE_CHUNK])

    async def read_tags(self, tags: list[str]) -> tuple[str | None, list[dict[str, list[float]]]]:
        """(active version, counts of each tag) in one round trip; version None when nothing is loaded."""
        reply = await self._read_tags(args=tags)
        if not reply or not reply[0]:
            return None, []
        return reply[0], [parse_tag_hash(flat) for flat in reply[1:]]

    async def add_outcome(self, tags: list[str], model: str, outcome: str,
                          output_tokens: float | None, feedback_id: str = "") -> tuple[str | None, bool, bool]:
        """Counts one judged outcome of `model` for each of `tags` into the active version, atomically.

        Returns (version, whether the model is in its pool, whether `feedback_id` was already
        counted); version None when nothing is loaded. A retry with the same id adds nothing.
        """
        if outcome not in ("win", "tie", "loss"):
            raise ValueError(f"outcome must be win, tie or loss, not {outcome!r}")
        length = "" if output_tokens is None else repr(float(output_tokens))
        reply = await self._feedback(args=[model, outcome, length, feedback_id, *tags])
        if not reply or not reply[0]:
            return None, False, False
        return reply[0], bool(int(reply[1])), len(reply) > 2 and bool(int(reply[2]))

    async def read_meta(self, version: str) -> tuple[list[ModelPrice], ScoringParams, str] | None:
        meta = await self.redis.hgetall(meta_key(version))
        if not meta:
            return None
        models = [ModelPrice(**m) for m in json.loads(meta["models"])]
        return models, ScoringParams(**json.loads(meta["params"])), meta.get("provenance", "")

    async def read_weights(self, only_tags: list[str] | None = None) -> Weights | None:
        """The active weights (or some of their tags) as a Weights object."""
        version = await self.active_version()
        if version is None:
            return None
        meta = await self.read_meta(version)
        if meta is None:
            return None
        models, params, provenance = meta
        names = sorted(await self.redis.smembers(tags_key(version))) if not only_tags else list(only_tags)
        if ALL_QUERIES_TAG not in names:
            names.append(ALL_QUERIES_TAG)
        pipe = self.redis.pipeline(transaction=False)
        for tag in names:
            pipe.hgetall(tag_key(version, tag))
        hashes = await pipe.execute()
        counts = {}
        for tag, mapping in zip(names, hashes):
            if mapping:
                counts[tag] = parse_tag_hash([x for kv in mapping.items() for x in kv])
        return Weights(models=models, params=params, counts=counts, provenance=provenance, version=version)
