"""The Redis key schema and every Redis operation of the scorer: the one place for both.

The key scheme and the Lua scripts are services/scorer/keys.py (hash-tagged for Redis Cluster);
the client, for one server, Sentinel or Cluster, comes from services/common/redis_client.py.

A load writes a new version beside the active one and switches `tagrouter:active` only once
every key is written, so a load that fails half-way leaves the previous weights serving; the
switch is one script call, made only if the caller still waits for it (`load(still_wanted=)`).
Every number is checked before it is written (tagrouter/core/limits.py) and again when read:
a stored count that is not a finite number in range is dropped from what Score and the
watchers see (and logged), so it cannot reach a router.
Score reads the active version and all of a query's tag hashes in one script call: one
round trip, and never a mix of two versions. Feedback adds one judged outcome to the active
version's hashes in one script call too: no reader ever sees half of it. Both bump
the generation in the same step, so a watcher that reads (active, generation) knows
whether the weights it copied are still current (WatchWeights).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict

from services.common import redis_client as connection
from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from services.common.redis_url import parse as parse_redis_url
from services.scorer.keys import (
    ACTIVE_KEY,
    CHANGES,
    FEEDBACK,
    GENERATION_KEY,
    READ_TAGS,
    SEQ_KEY,
    SWITCH,
    changed_key,
    count_field,
    meta_key,
    tag_key,
    tags_key,
)
from services.scorer.replication import Replication
from tagrouter.core import limits
from tagrouter.core.operating import Calibration
from tagrouter.core.scoring import ALL_QUERIES_TAG, COUNT_FIELDS, ScoringParams
from tagrouter.core.weights import (
    MAX_NAME_LENGTH,
    ModelPrice,
    Weights,
    WeightsError,
    estimated_bytes,
    validate_calibration,
    validate_pool,
)

log = logging.getLogger(__name__)

WRITE_CHUNK = 500  # hashes per pipeline when loading


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

    def __init__(self, client, replication: Replication | None = None):
        self.redis = client
        self._read_tags = client.register_script(READ_TAGS)
        self._switch = client.register_script(SWITCH)
        self._changes = client.register_script(CHANGES)
        self.replication = replication or Replication(client, wanted=0)

    @classmethod
    def from_url(cls, url: str, wait_replicas: int = 0, wait_timeout_ms: int = 500, ca_file=None) -> WeightStore:
        """A store on REDIS_URL (any of its three forms); Feedback waits for `wait_replicas` replicas;
        `ca_file` verifies a TLS Redis (TAGROUTER_REDIS_CA_FILE)."""
        client = connection.connect(parse_redis_url(url), ca_file)
        return cls(client, Replication(client, wait_replicas, wait_timeout_ms))

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
        if len(version) > MAX_NAME_LENGTH:  # each GetWeights -> LoadWeights adds a suffix: stay loadable
            version = f"{weights.content_hash()}.{seq}"
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
            previous = await self._switch(keys=[ACTIVE_KEY, GENERATION_KEY], args=[version])  # switch and announce
        except BaseException:
            await self._delete_version(version)
            raise
        if previous and previous != version:
            await self._delete_version(previous)
        return version

    async def _delete_version(self, version: str) -> None:
        tags = await self.redis.smembers(tags_key(version))
        keys = [tag_key(version, t) for t in tags] + [tags_key(version), meta_key(version), changed_key(version)]
        for start in range(0, len(keys), WRITE_CHUNK):
            await self.redis.unlink(*keys[start : start + WRITE_CHUNK])

    async def read_tags(self, tags: list[str]) -> tuple[str | None, list[dict[str, list[float]]]]:
        """(active version, counts of each tag) in one round trip; version None when nothing is loaded."""
        reply = await self._read_tags(keys=[ACTIVE_KEY], args=tags)
        if not reply or not reply[0]:
            return None, []
        return reply[0], [parse_tag_hash(flat) for flat in reply[1:]]

    async def add_outcome(self, tags: list[str], model: str, outcome: str | tuple[int, int, int],
                          output_tokens: float | None, feedback_id: str = "") -> tuple[str | None, bool, bool]:
        """Counts one judged answer of `model` for each of `tags` into the active version, all or nothing:
        `outcome` is "win", "tie" or "loss", or (wins, ties, losses) of one answer compared several times.

        Returns (version, whether the model is in its pool, whether `feedback_id` was already
        counted); version None when nothing is loaded. A retry with the same id adds nothing.
        Raises ResourceExhausted past a limit on counts or on the vocabulary's growth,
        FailedPrecondition when the stored counts are corrupt; either way nothing is written.
        """
        if isinstance(outcome, str):
            if outcome not in ("win", "tie", "loss"):
                raise ValueError(f"outcome must be win, tie or loss, not {outcome!r}")
            outcome = tuple(int(outcome == o) for o in ("win", "tie", "loss"))
        added = [int(n) for n in outcome]
        if len(added) != 3 or min(added) < 0 or sum(added) < 1:
            raise ValueError(f"outcome counts must be three counts >= 0, at least one, not {outcome!r}")
        length = "" if output_tokens is None else repr(float(limits.check_output_tokens(output_tokens)))
        reply = await self.replication.run_durably(FEEDBACK, [ACTIVE_KEY, GENERATION_KEY],
                                                   [model, json.dumps(added), length, feedback_id, *tags])
        if not reply or not reply[0]:
            return None, False, False
        if len(reply) > 3:
            raise _refusal(str(reply[3]), str(reply[4]))
        return reply[0], bool(int(reply[1])), len(reply) > 2 and bool(int(reply[2]))

    async def changes(self, version: str, generation: int, most: int) -> tuple[str | None, int, list | None]:
        """(active version, generation, changed cells) since (`version`, `generation`), read atomically.

        The cells are (tag, model, counts in COUNT_FIELDS order); None instead of them when the
        version is another or more than `most` cells changed (read the whole weights then). A cell
        whose stored counts are not finite numbers within the limits comes with counts None."""
        reply = await self._changes(keys=[ACTIVE_KEY, GENERATION_KEY], args=[version, generation, most])
        if not reply or not reply[0]:
            return None, 0, None
        active, now = reply[0], int(reply[1])
        if reply[2] != "delta":
            return active, now, None
        cells = []
        for i in range(3, len(reply), 6):
            tag, model = json.loads(reply[i])
            values = reply[i + 1 : i + 6]
            row = parse_tag_hash([x for name, v in zip(COUNT_FIELDS, values) if v is not None
                                  for x in (count_field(model, name), v)]).get(model)
            cells.append((tag, model, row))
        return active, now, cells

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
