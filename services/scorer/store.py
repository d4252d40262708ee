"""The Redis key schema and every Redis operation of the scorer: the one place for both.

Keys (version = "<weights version>.<load sequence>"):
    tagrouter:active                       string: the version Score reads
    tagrouter:seq                          counter: load sequence
    tagrouter:w:<version>:meta             hash: models (JSON), params (JSON), calibration (JSON or empty),
                                           provenance, feedback (count)
    tagrouter:w:<version>:tags             set: tag names of that version
    tagrouter:w:<version>:tag:<tag>        hash: "<model>|<field>" -> count
    tagrouter:feedback:<id>                string: a Feedback id already counted (kept 7 days)
    tagrouter:generation                   counter: +1 at every load and every counted feedback

A load writes a new version beside the active one and switches `tagrouter:active` only once
every key is written, so a load that fails half-way leaves the previous weights serving; the
switch is one MULTI/EXEC, made only if the caller still waits for it (`load(still_wanted=)`).
Every number is checked before it is written (tagrouter/core/limits.py) and again when read:
a stored count that is not a finite number in range is dropped from what Score and the
watchers see (and logged), so it cannot reach a router.
Score reads the active version and all of a query's tag hashes in one script call: one
round trip, and never a mix of two versions. Feedback adds one judged outcome to the active
version's hashes in one script call too: no reader ever sees half of it. Both bump
`tagrouter:generation` in the same step, so a watcher that reads (active, generation) knows
whether the weights it copied are still current (WatchWeights).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict

import redis.asyncio as aioredis

from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from tagrouter.core import limits
from tagrouter.core.operating import Calibration
from tagrouter.core.scoring import ALL_QUERIES_TAG, COUNT_FIELDS, ScoringParams
from tagrouter.core.weights import ModelPrice, Weights, WeightsError, estimated_bytes, validate_calibration, validate_pool

log = logging.getLogger(__name__)

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


# One judged outcome counted into the active version, all or nothing. A script runs atomically,
# but Redis keeps the writes made before a script error: so this one reads and checks
# everything first (stored counts finite, the sums within the limits, the vocabulary's growth)
# and only then writes, with commands that cannot fail. KEYS: none (the version is read inside).
# ARGV: model, outcome field, output tokens ('' = the cell's mean length), feedback id ('' =
# none), then tag names. Returns {version, 1, 0} when counted, {version, 1, 1} when that id was
# counted before (a retry: nothing is added), {version, 0} when the model is not in the pool,
# {version, 1, 0, reason, detail} when refused (nothing written), {false} when nothing is loaded.
_FEEDBACK = (
    f"local MAX_OUTPUT, CELL_BYTES = {limits.MAX_OUTPUT_TOKENS!r}, {limits.CELL_BYTES!r}\n"
    f"local MAX_COUNT, MAX_TOKENS = {limits.MAX_COUNT!r}, {limits.MAX_TOTAL_OUTPUT_TOKENS!r}\n"
    f"local MAX_NEW_TAGS, MAX_TAGS = {limits.MAX_NEW_TAGS_PER_FEEDBACK!r}, {limits.MAX_TAGS_TOTAL!r}\n"
    f"local MAX_BYTES = {limits.MAX_WEIGHTS_BYTES!r}\n") + """
local version = redis.call('GET', 'tagrouter:active')
if not version then return {false} end
local base = 'tagrouter:w:' .. version
local model = ARGV[1]
local models = cjson.decode(redis.call('HGET', base .. ':meta', 'models') or '[]')
local known = false
for _, m in ipairs(models) do
  if m.name == model then known = true end
end
if not known then return {version, 0} end
local id_key = 'tagrouter:feedback:' .. ARGV[4]
if ARGV[4] ~= '' and redis.call('EXISTS', id_key) == 1 then return {version, 1, 1} end
local function finite(x) return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge end
local given = nil
if ARGV[3] ~= '' then
  given = tonumber(ARGV[3])
  if not finite(given) or given < 0 or given > MAX_OUTPUT then return {version, 1, 0, 'length', ARGV[3]} end
end
local column = ({win = 1, tie = 2, loss = 3})[ARGV[2]]
local fields = {model .. '|win', model .. '|tie', model .. '|loss', model .. '|answers', model .. '|output_tokens'}
local plan, new_tags, new_bytes = {}, {}, 0
for i = 5, #ARGV do
  local tag = ARGV[i]
  local key = base .. ':tag:' .. tag
  local stored = redis.call('HMGET', key, unpack(fields))
  local row, fresh = {}, true
  for j = 1, 5 do
    local v = 0
    if stored[j] then
      fresh = false
      v = tonumber(stored[j])
      if not finite(v) or v < 0 then return {version, 1, 0, 'corrupt', tag} end
    end
    row[j] = v
  end
  if fresh then new_bytes = new_bytes + #tag + #model + CELL_BYTES end
  if redis.call('SISMEMBER', base .. ':tags', tag) == 0 then new_tags[#new_tags + 1] = tag end
  local length = given
  if not length then
    if row[4] > 0 then length = math.min(row[5] / row[4], MAX_OUTPUT) else length = 0 end
  end
  row[column] = row[column] + 1
  row[4] = row[4] + 1
  row[5] = row[5] + length
  if row[column] > MAX_COUNT or row[4] > MAX_COUNT or row[5] > MAX_TOKENS then
    return {version, 1, 0, 'full', tag}
  end
  plan[#plan + 1] = {key, row}
end
if #new_tags > MAX_NEW_TAGS then return {version, 1, 0, 'new_tags', tostring(#new_tags)} end
if #new_tags > 0 then
  local total = redis.call('SCARD', base .. ':tags') - redis.call('SISMEMBER', base .. ':tags', '*')
  for _, tag in ipairs(new_tags) do if tag ~= '*' then total = total + 1 end end
  if total > MAX_TAGS then return {version, 1, 0, 'tags_total', tostring(total)} end
end
if new_bytes > 0 then
  local size = tonumber(redis.call('HGET', base .. ':meta', 'bytes') or '0') or 0
  if size + new_bytes > MAX_BYTES then return {version, 1, 0, 'bytes', tostring(size + new_bytes)} end
end
if ARGV[4] ~= '' then redis.call('SET', id_key, version, 'EX', 604800) end
for _, item in ipairs(plan) do
  local row = item[2]
  redis.call('HSET', item[1], fields[1], string.format('%.17g', row[1]), fields[2], string.format('%.17g', row[2]),
             fields[3], string.format('%.17g', row[3]), fields[4], string.format('%.17g', row[4]),
             fields[5], string.format('%.17g', row[5]))
end
if #new_tags > 0 then redis.call('SADD', base .. ':tags', unpack(new_tags)) end
redis.call('HINCRBY', base .. ':meta', 'feedback', 1)
if new_bytes > 0 then redis.call('HINCRBY', base .. ':meta', 'bytes', new_bytes) end
redis.call('INCR', 'tagrouter:generation')
return {version, 1, 0}
"""
_FIELD_POSITION = {name: i for i, name in enumerate(COUNT_FIELDS)}


_dropped_logged = 0


def parse_tag_hash(flat: list[str]) -> dict[str, list[float]]:
    """A tag hash's flat [field, value, ...] list -> model -> counts in COUNT_FIELDS order.

    A model's row with a value that is not a finite number within the limits is left out
    (as if the tag had not seen the model): state written by other code or by hand cannot
    poison the scores."""
    global _dropped_logged
    per_model: dict[str, list[float]] = {}
    bad: set[str] = set()
    position = _FIELD_POSITION
    for key, value in zip(flat[::2], flat[1::2]):
        model, _, name = key.rpartition("|")
        i = position.get(name)
        if i is not None:
            row = per_model.get(model)
            if row is None:
                row = per_model[model] = [0.0] * len(COUNT_FIELDS)
            try:
                row[i] = float(value)
            except ValueError:
                bad.add(model)
    for model, row in per_model.items():
        if model not in bad and limits.count_row_problem(row) is not None:
            bad.add(model)
    for model in bad:
        del per_model[model]
    if bad and _dropped_logged < 20:
        _dropped_logged += 1
        log.error("stored counts of model(s) %s are not finite numbers within the limits: left out "
                  "(reload the weights to repair them)", ", ".join(sorted(bad)))
    return per_model


class LoadAbandoned(Exception):
    """The caller of a load gave up before its version became active; nothing was switched."""


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

    async def load(self, weights: Weights, still_wanted: Callable[[], bool] | None = None) -> str:
        """Writes `weights` as a new version, then makes it the active one. Returns the version.

        `still_wanted` is asked just before the switch: False (the caller's deadline passed or
        it cancelled) removes the new version and raises LoadAbandoned, the previous one serving."""
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
                "calibration": json.dumps(weights.calibration.to_dict()) if weights.calibration else "",
                "source_version": weights.version,
                "bytes": estimated_bytes(weights),
            })
            if still_wanted is not None and not still_wanted():
                raise LoadAbandoned(f"version {version} was not activated: the caller gave up")
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
        """Counts one judged outcome of `model` for each of `tags` into the active version, all or nothing.

        Returns (version, whether the model is in its pool, whether `feedback_id` was already
        counted); version None when nothing is loaded. A retry with the same id adds nothing.
        Raises ResourceExhausted past a limit on counts or on the vocabulary's growth,
        FailedPrecondition when the stored counts are corrupt; either way nothing is written.
        """
        if outcome not in ("win", "tie", "loss"):
            raise ValueError(f"outcome must be win, tie or loss, not {outcome!r}")
        length = "" if output_tokens is None else repr(float(limits.check_output_tokens(output_tokens)))
        reply = await self._feedback(args=[model, outcome, length, feedback_id, *tags])
        if not reply or not reply[0]:
            return None, False, False
        if len(reply) > 3:
            raise _refusal(str(reply[3]), str(reply[4]))
        return reply[0], bool(int(reply[1])), len(reply) > 2 and bool(int(reply[2]))

    async def read_meta(self, version: str) -> tuple[list[ModelPrice], ScoringParams, str, Calibration | None] | None:
        """The version's models and parameters, checked as a load checks them; FailedPrecondition if they fail."""
        meta = await self.redis.hgetall(meta_key(version))
        if not meta:
            return None
        try:
            models = [ModelPrice(str(m["name"]), float(m["input_usd_per_mtok"]), float(m["output_usd_per_mtok"]))
                      for m in json.loads(meta["models"])]
            params = ScoringParams(**{k: float(v) for k, v in json.loads(meta["params"]).items()})
            validate_pool(models, params, f"stored weights {version}")
            calibration = Calibration.from_dict(json.loads(meta["calibration"])) if meta.get("calibration") else None
            validate_calibration(calibration, f"stored weights {version}")
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # WeightsError is a ValueError
            detail = str(err) if isinstance(err, WeightsError) else f"{type(err).__name__}: {err}"
            raise FailedPrecondition(f"the stored weights are invalid ({detail}); load them again") from None
        return models, params, meta.get("provenance", ""), calibration

    async def read_weights(self, only_tags: list[str] | None = None) -> Weights | None:
        """The active weights (or some of their tags) as a Weights object."""
        version = await self.active_version()
        if version is None:
            return None
        meta = await self.read_meta(version)
        if meta is None:
            return None
        models, params, provenance, calibration = meta
        names = sorted(await self.redis.smembers(tags_key(version))) if not only_tags else list(only_tags)
        if ALL_QUERIES_TAG not in names:
            names.append(ALL_QUERIES_TAG)
        pipe = self.redis.pipeline(transaction=False)
        for tag in names:
            pipe.hgetall(tag_key(version, tag))
        hashes = await pipe.execute()
        counts: dict[str, dict[str, list[float]]] = {ALL_QUERIES_TAG: {}}
        for tag, mapping in zip(names, hashes):
            if mapping:
                parsed = parse_tag_hash([x for kv in mapping.items() for x in kv])
                if parsed or tag == ALL_QUERIES_TAG:
                    counts[tag] = parsed
        return Weights(models=models, params=params, counts=counts, provenance=provenance, version=version,
                       calibration=calibration)


_REFUSALS = {
    "length": lambda d: InvalidArgument(f"output_tokens must be a finite number in [0, {limits.MAX_OUTPUT_TOKENS}], "
                                        f"not {d}"),
    "corrupt": lambda d: FailedPrecondition(f"the stored counts of tag {d!r} are not finite numbers; nothing was "
                                            "counted (load the weights again to repair them)"),
    "full": lambda d: ResourceExhausted(f"tag {d!r}: a count would pass MAX_COUNT ({limits.MAX_COUNT:g}) or "
                                        f"MAX_TOTAL_OUTPUT_TOKENS ({limits.MAX_TOTAL_OUTPUT_TOKENS:g}); "
                                        "nothing was counted"),
    "new_tags": lambda d: ResourceExhausted(f"tags: {d} new tags, at most MAX_NEW_TAGS_PER_FEEDBACK "
                                            f"({limits.MAX_NEW_TAGS_PER_FEEDBACK}) per Feedback; nothing was counted"),
    "tags_total": lambda d: ResourceExhausted(f"tags: the weights would hold {d} tags, at most MAX_TAGS_TOTAL "
                                              f"({limits.MAX_TAGS_TOTAL}); nothing was counted (fit and load "
                                              "weights with fewer tags)"),
    "bytes": lambda d: ResourceExhausted(f"tags: the weights would take about {d} bytes as a message, at most "
                                         f"MAX_WEIGHTS_BYTES ({limits.MAX_WEIGHTS_BYTES}); nothing was counted"),
}


def _refusal(reason: str, detail: str) -> Exception:
    make = _REFUSALS.get(reason)
    return make(detail) if make else RuntimeError(f"feedback refused: {reason} {detail}")
