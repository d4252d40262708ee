"""Micro-batching and the tag cache, without the model: a fake batch function records its calls."""
import asyncio
import threading

from services.tagger.batching import MAX_CELLS, WINDOW_CHARS, MicroBatcher, length_groups, split_by_cells
from services.tagger.cache import TagCache, cache_key


def test_length_groups_keep_similar_lengths_together():
    texts = ["a" * 10, "b" * 400, "c" * 12, "d" * 390]
    assert sorted(map(sorted, length_groups(texts))) == [[0, 2], [1, 3]]


def test_session_calls_are_capped_by_padded_size():
    lengths = [WINDOW_CHARS * 3] * 10  # past the window: each costs the window, not its length
    chunks = split_by_cells(list(range(10)), lengths)
    assert all(len(c) * WINDOW_CHARS <= MAX_CELLS for c in chunks)
    assert sum(map(len, chunks)) == 10
    assert split_by_cells(list(range(32)), [100] * 32) == [list(range(32))]  # short ones: one call


def test_concurrent_submits_share_calls_and_get_their_own_results():
    calls = []

    def run_batch(texts):
        calls.append(list(texts))
        return [t.upper() for t in texts]

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=32)
        batcher.start()
        try:
            alone = await batcher.submit("first")
            many = await asyncio.gather(*(batcher.submit(f"q{i}") for i in range(20)))
            return alone, many
        finally:
            await batcher.close()

    alone, many = asyncio.run(main())
    assert alone == "FIRST" and many == [f"Q{i}" for i in range(20)]
    assert calls[0] == ["first"]
    assert len(calls) < 21, "the twenty concurrent queries shared session calls"


def test_a_failing_batch_fails_its_callers_and_the_batcher_lives_on():
    def run_batch(texts):
        if "bad" in texts:
            raise RuntimeError("boom")
        return texts

    async def main():
        batcher = MicroBatcher(run_batch)
        batcher.start()
        try:
            try:
                await batcher.submit("bad")
            except RuntimeError as err:
                first = str(err)
            return first, await batcher.submit("good")
        finally:
            await batcher.close()

    assert asyncio.run(main()) == ("boom", "good")


def test_cache_key_ignores_only_surrounding_whitespace():
    assert cache_key("  What is 2+2?\n") == cache_key("What is 2+2?")
    assert cache_key("what is 2+2?") != cache_key("What is 2+2?")
    assert cache_key("a  b") != cache_key("a b")


def test_tag_cache_is_a_bounded_lru():
    cache = TagCache(2)
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1  # a is now the most recent
    cache.put(b"c", 3)
    assert cache.get(b"b") is None and cache.get(b"a") == 1 and cache.get(b"c") == 3
    assert len(cache) == 2 and cache.hits == 3 and cache.misses == 1
    off = TagCache(0)
    off.put(b"a", 1)
    assert off.get(b"a") is None


def test_a_lone_query_runs_on_the_event_loop_and_a_batch_on_the_worker_thread():
    calls = []

    def run_texts(texts):
        calls.append((threading.current_thread() is threading.main_thread(), len(texts)))
        return list(texts)

    async def main():
        batcher = MicroBatcher(run_texts, max_batch=32)
        batcher.start()
        try:
            await batcher.submit("first")  # nothing queued behind it: no thread hop
            await asyncio.gather(*(batcher.submit(f"q{i}") for i in range(20)))
        finally:
            await batcher.close()

    asyncio.run(main())
    assert calls[0] == (True, 1)
    assert any(not on_loop and n > 1 for on_loop, n in calls[1:])
    assert all(n == 1 for on_loop, n in calls if on_loop)
