"""The Redis key schema of the scorer and the Lua scripts that use it: the one place for both.

Every key carries the hash tag `{tagrouter}`, so in a Redis Cluster they all live in one slot and
every script and transaction over them (a load's switch, Feedback, the generation bump, a read of
the changes) touches one slot: no CROSSSLOT error is possible. The weights are one unit that
changes atomically, so they cannot be spread over slots anyway; feedback ids stay beside them
because Feedback checks and writes its id in the same script as the counts (exactly once).
(version = "<weights version>.<load sequence>")

    {tagrouter}:active                     string: the version Score reads
    {tagrouter}:seq                        counter: load sequence
    {tagrouter}:generation                 counter: +1 at every load and every counted feedback
    {tagrouter}:w:<version>:meta           hash: models (JSON), params (JSON), calibration (JSON or
                                           empty), provenance, feedback (count), bytes
    {tagrouter}:w:<version>:tags           set: tag names of that version
    {tagrouter}:w:<version>:tag:<tag>      hash: "<model>|<field>" -> count
    {tagrouter}:w:<version>:changed        sorted set: JSON [tag, model] -> generation of its last change
    {tagrouter}:feedback:<id>              string: a Feedback id already counted (kept 7 days)
"""
from __future__ import annotations

from functools import partial

from tagrouter.core import limits

PREFIX = "{tagrouter}"
KEY_PATTERN = f"{PREFIX}:*"  # SCAN pattern of every key of ours (a `{` is literal in a pattern)
ACTIVE_KEY = f"{PREFIX}:active"
SEQ_KEY = f"{PREFIX}:seq"
GENERATION_KEY = f"{PREFIX}:generation"


def version_prefix(version: str) -> str:
    """What every key of one weights version starts with."""
    return f"{PREFIX}:w:{version}"


def version_key(version: str, part: str) -> str:
    """A key of one weights version: its `meta`, its `tags` set, its `changed` cells, or `tag:<name>`."""
    return f"{version_prefix(version)}:{part}"


meta_key = partial(version_key, part="meta")
tags_key = partial(version_key, part="tags")
changed_key = partial(version_key, part="changed")


def tag_key(version: str, tag: str) -> str:
    return version_key(version, f"tag:{tag}")


def feedback_key(feedback_id: str) -> str:
    return f"{PREFIX}:feedback:{feedback_id}"


def count_field(model: str, name: str) -> str:
    return f"{model}|{name}"


# KEYS: ACTIVE_KEY (declared so that a cluster client sends the script to the weights' slot; the
# other keys depend on the active version and share its hash tag). ARGV: tag names.
# Returns {version, hash1, hash2, ...} with each hash as a flat field/value list.
READ_TAGS = f"local PREFIX = {PREFIX!r}\n" + """
local version = redis.call('GET', KEYS[1])
if not version then return {false} end
local out = {version}
for i, tag in ipairs(ARGV) do
  out[i + 1] = redis.call('HGETALL', PREFIX .. ':w:' .. version .. ':tag:' .. tag)
end
return out
"""


# One judged outcome counted into the active version, all or nothing. A script runs atomically,
# but Redis keeps the writes made before a script error: so this one reads and checks
# everything first (stored counts finite, the sums within the limits, the vocabulary's growth)
# and only then writes, with commands that cannot fail. KEYS: ACTIVE_KEY, GENERATION_KEY (the
# version's keys are read inside and share their hash tag). Each changed (tag, model) cell is
# recorded in the version's `changed` zset with the new generation, for WatchWeights' deltas.
# ARGV: model, the outcomes as a JSON list [wins, ties, losses] (one answer, however many
# comparisons), output tokens ('' = the cell's mean length), feedback id ('' = none), then tag
# names. Returns {version, 1, 0} when counted, {version, 1, 1} when that id was
# counted before (a retry: nothing is added), {version, 0} when the model is not in the pool,
# {version, 1, 0, reason, detail} when refused (nothing written), {false} when nothing is loaded.
FEEDBACK = (
    f"local PREFIX = {PREFIX!r}\n"
    f"local MAX_OUTPUT, CELL_BYTES = {limits.MAX_OUTPUT_TOKENS!r}, {limits.CELL_BYTES!r}\n"
    f"local MAX_COUNT, MAX_TOKENS = {limits.MAX_COUNT!r}, {limits.MAX_TOTAL_OUTPUT_TOKENS!r}\n"
    f"local MAX_NEW_TAGS, MAX_TAGS = {limits.MAX_NEW_TAGS_PER_FEEDBACK!r}, {limits.MAX_TAGS_TOTAL!r}\n"
    f"local MAX_BYTES = {limits.MAX_WEIGHTS_BYTES!r}\n") + """
local version = redis.call('GET', KEYS[1])
if not version then return {false} end
local base = PREFIX .. ':w:' .. version
local model = ARGV[1]
local models = cjson.decode(redis.call('HGET', base .. ':meta', 'models') or '[]')
local known = false
for _, m in ipairs(models) do
  if m.name == model then known = true end
end
if not known then return {version, 0} end
local id_key = PREFIX .. ':feedback:' .. ARGV[4]
-- A resend: nothing to count, but one write (the id's expiry, renewed) so that the WAIT after this
-- script covers the original outcome too (replication is in order): a duplicate is acknowledged only
-- once a replica holds what it duplicates, whichever connection wrote it.
if ARGV[4] ~= '' and redis.call('EXISTS', id_key) == 1 then
  redis.call('EXPIRE', id_key, 604800)
  return {version, 1, 1}
end
local function finite(x) return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge end
local given = nil
if ARGV[3] ~= '' then
  given = tonumber(ARGV[3])
  if not finite(given) or given < 0 or given > MAX_OUTPUT then return {version, 1, 0, 'length', ARGV[3]} end
end
local added = cjson.decode(ARGV[2])
local fields = {model .. '|win', model .. '|tie', model .. '|loss', model .. '|answers', model .. '|output_tokens'}
local plan, new_tags, new_bytes, changed = {}, {}, 0, {}
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
  for j = 1, 3 do row[j] = row[j] + added[j] end
  row[4] = row[4] + 1
  row[5] = row[5] + length
  if row[1] > MAX_COUNT or row[2] > MAX_COUNT or row[3] > MAX_COUNT or row[4] > MAX_COUNT or row[5] > MAX_TOKENS then
    return {version, 1, 0, 'full', tag}
  end
  plan[#plan + 1] = {key, row}
  changed[#changed + 1] = cjson.encode({tag, model})
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
local generation = redis.call('INCR', KEYS[2])
for _, cell in ipairs(changed) do redis.call('ZADD', base .. ':changed', generation, cell) end
return {version, 1, 0}
"""


# The switch of a load: the new version becomes active and the generation moves, in one step.
# KEYS: ACTIVE_KEY, GENERATION_KEY. ARGV: the new version. Returns the previous version (or false).
SWITCH = """
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return previous
"""

# What changed since a watcher's (version, generation), read atomically. KEYS: ACTIVE_KEY,
# GENERATION_KEY. ARGV: version seen, generation seen, most cells wanted. Returns {false} when
# nothing is loaded; {version, generation, 'full'} when the version is another or more cells changed
# than wanted; else {version, generation, 'delta', cell, win, tie, loss, answers, output_tokens, ...}
# with each cell as its JSON [tag, model] and its five counts as stored (false where absent).
CHANGES = f"local PREFIX = {PREFIX!r}\n" + """
local version = redis.call('GET', KEYS[1])
if not version then return {false} end
local generation = redis.call('GET', KEYS[2]) or '0'
if version ~= ARGV[1] then return {version, generation, 'full'} end
local base = PREFIX .. ':w:' .. version
local cells = redis.call('ZRANGEBYSCORE', base .. ':changed', '(' .. ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[3]) + 1)
if #cells > tonumber(ARGV[3]) then return {version, generation, 'full'} end
local out = {version, generation, 'delta'}
for _, cell in ipairs(cells) do
  local pair = cjson.decode(cell)
  local m = pair[2]
  local row = redis.call('HMGET', base .. ':tag:' .. pair[1], m .. '|win', m .. '|tie', m .. '|loss', m .. '|answers',
                         m .. '|output_tokens')
  out[#out + 1] = cell
  for j = 1, 5 do out[#out + 1] = row[j] end
end
return out
"""
