"""`tagrouter bench`: the encoder floor, Tag, Score and Route latency and throughput, in one run.

Routing is paid on every LLM call, so the figure that matters is how far `Route` is from the
floor: one forward pass of the int8 encoder, in this process, one query at a time, back to
back. Both are measured in the same run, alternating in rounds (encoder, then Tag, Score and
Route, then the encoder again), so a machine whose background load drifts (a shared 2-core
box) moves both sides of each ratio together. Beside the floor, the encoder is also timed
interleaved query by query with the RPCs: on a shared machine it runs slower when other
processes ran just before it, as a service's encoder always does (context for the ratios).

Every measured query is distinct (a real prompt plus a short run-unique marker): the tagger's
exact-match cache misses on all of them, so the figures are the uncached path. Cache hits are
measured separately (`route.c1_cache_hit`) by replaying queries the stack has already seen.

Request loops are bounded in count and in time, and only ever target loopback addresses.

Modules: `queries` (prompts and distinct queries), `load` (the request loops), `figures`
(latency summaries, ratios, the router's phase timings), `measure` (one query length),
`ghz` (the bench/ghz scenarios), `report` (machine, versions, targets, JSON) and `command`
(`run(args)`, the stack under test through `tagrouter.stack.LocalStack`).
"""
from tagrouter.bench.command import run, run_ghz
from tagrouter.bench.ghz import GHZ_TEMPLATES, ghz_method, ghz_requests, load_ghz_config, render_ghz_data, run_ghz_scenario

__all__ = ["GHZ_TEMPLATES", "ghz_method", "ghz_requests", "load_ghz_config", "render_ghz_data", "run",
           "run_ghz", "run_ghz_scenario"]
