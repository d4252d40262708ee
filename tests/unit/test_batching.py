"""Micro-batching and the tag cache, without the model: a fake batch function records its calls."""
import asyncio
import threading
import time

from services.common.errors import DeadlineExceeded
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


def test_a_text_its_call_cannot_finish_in_time_is_left_out_and_fails_at_once():
    # a real sleep stands for the encoder: 20 ms per text of 100 characters
    encoded = []

    def run_batch(texts):
        time.sleep(0.02 * len(texts))
        encoded.extend(texts)
        return list(texts)

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=32)
        batcher.start()
        try:
            await asyncio.gather(*(batcher.submit(f"{i:03d}" + "w" * 97) for i in range(4)))  # the estimate
            hold = asyncio.ensure_future(batcher.submit("h" * 100))  # runs alone: the rest queue behind it
            await asyncio.sleep(0)
            now = time.monotonic()
            # behind the lone one, a call of 8 texts: about 160 ms by the estimate
            late = [batcher.submit(f"{i:03d}" + "l" * 97, deadline=now + 0.08) for i in range(4)]
            easy = [batcher.submit(f"{i:03d}" + "e" * 97, deadline=now + 5.0) for i in range(4)]
            results = await asyncio.gather(hold, *late, *easy, return_exceptions=True)
            return results, time.monotonic() - now
        finally:
            await batcher.close()

    results, took = asyncio.run(main())
    late, easy = results[1:5], results[5:]
    assert all(isinstance(r, DeadlineExceeded) for r in late), late
    assert "within the caller's deadline" in str(late[0])
    assert [r[3] for r in easy] == ["e"] * 4
    assert not any(t[3] == "l" for t in encoded), "a text that could not be in time was encoded"
    assert took < 2.0


def test_without_a_deadline_or_an_estimate_nothing_is_left_out():
    def run_batch(texts):
        time.sleep(0.01 * len(texts))
        return list(texts)

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=32)
        batcher.start()
        try:
            # the first call has no estimate to go by: a deadline it will miss does not leave it out
            first = await asyncio.gather(*(batcher.submit(f"{i}", deadline=time.monotonic()) for i in range(3)))
            rest = await asyncio.gather(*(batcher.submit(f"x{i}") for i in range(10)))
            return first, rest
        finally:
            await batcher.close()

    first, rest = asyncio.run(main())
    assert first == ["0", "1", "2"] and rest == [f"x{i}" for i in range(10)]
