"""The k-hop passes' thread sharing (features.graph.hop_threads): ranges that cover every row
once in order, every task run once on a worker of its own, errors raised to the caller, and
the thread count's setting."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from features.graph import hop_threads
from features.graph.factory import open_store
from features.graph.hop_threads import ENV_THREADS
from features.graph.local import LocalGraphStore
from marquee.home import Home


def _covered(spans: list[tuple[int, int]], n: int) -> None:
    """The spans are ``[a, b)`` ranges, in order, one after another, from 0 to ``n``."""
    assert spans[0][0] == 0 and spans[-1][1] == n
    for (_, b), (a, _) in itertools.pairwise(spans):
        assert a == b
    assert all(a <= b for a, b in spans)


@pytest.mark.parametrize(("n", "parts"), [(0, 1), (0, 4), (3, 8), (10, 3), (10, 4), (500, 6)])
def test_even_spans_cover_every_row_once(n: int, parts: int) -> None:
    spans = hop_threads.even_spans(n, parts)
    assert len(spans) == parts
    _covered(spans, n)
    sizes = [b - a for a, b in spans]
    assert max(sizes) - min(sizes) <= 1


def test_weighted_spans_cover_every_row_once_by_work() -> None:
    rng = np.random.default_rng(1)
    for lens in (rng.integers(0, 9, 1000), np.zeros(5, dtype=np.int64), np.array([0, 7, 0])):
        cum = np.concatenate([[0], np.cumsum(lens)])
        for parts in (1, 2, 3, 8):
            spans = hop_threads.weighted_spans(cum, parts)
            assert len(spans) == parts
            _covered(spans, lens.shape[0])
    cum = np.concatenate([[0], np.cumsum(np.ones(1000, dtype=np.int64))])
    work = [int(cum[b] - cum[a]) for a, b in hop_threads.weighted_spans(cum, 4)]
    assert max(work) - min(work) <= 1


def test_small_passes_and_one_thread_stay_on_the_caller() -> None:
    work = hop_threads.PARALLEL_MIN_WORK
    assert hop_threads.blocks(1, 10 * work) == 1
    assert hop_threads.blocks(2, work - 1) == 1
    assert hop_threads.blocks(2, work) == 2 * hop_threads.BLOCKS_PER_THREAD
    assert hop_threads.blocks(3, 5, min_work=5) == 3 * hop_threads.BLOCKS_PER_THREAD
    seen: list[str] = []
    hop_threads.run(lambda a, b, w: seen.append(threading.current_thread().name), [(0, 9)], 2)
    hop_threads.run(lambda a, b, w: seen.append(threading.current_thread().name), [(0, 1)] * 3, 1)
    assert seen == [threading.current_thread().name] * 4


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_every_task_runs_once_on_its_own_worker(threads: int) -> None:
    """Workers numbered below ``threads``; two calls of one worker never overlap."""
    done = np.zeros(40, dtype=np.int64)
    busy = [threading.Lock() for _ in range(threads)]

    def part(a: int, b: int, worker: int) -> None:
        assert 0 <= worker < threads
        assert busy[worker].acquire(blocking=False), "one worker, two calls at once"
        done[a:b] += 1
        busy[worker].release()

    hop_threads.run(part, hop_threads.even_spans(40, 4 * threads), threads)
    assert (done == 1).all()


@pytest.mark.parametrize("failing", [0, 1, 5])
def test_an_error_in_any_range_reaches_the_caller_after_the_others(failing: int) -> None:
    """Whichever worker raises, the caller gets the error, and only once no range is still
    running (none writes into the caller's arrays after it returned)."""
    done: list[int] = []

    def part(a: int, b: int, worker: int) -> None:
        time.sleep(0.01)
        if a == failing:
            raise RuntimeError(f"range {a}")
        done.append(a)

    with pytest.raises(RuntimeError, match=f"range {failing}"):
        hop_threads.run(part, hop_threads.even_spans(8, 8), 2)
    after = len(done)
    time.sleep(0.05)
    assert len(done) == after and failing not in done


def test_concurrent_callers_share_the_pool() -> None:
    """Two queries at once (the service's thread pool): each gets all its ranges done."""
    results: list[np.ndarray] = []

    def query() -> None:
        out = np.zeros(1000, dtype=np.int64)

        def part(a: int, b: int, _: int) -> None:
            out[a:b] += np.arange(a, b)

        for _ in range(50):
            hop_threads.run(part, hop_threads.even_spans(1000, 8), 2)
        results.append(out)

    threads = [threading.Thread(target=query) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for out in results:
        np.testing.assert_array_equal(out, 50 * np.arange(1000))


def test_the_thread_count_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_THREADS, raising=False)
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    monkeypatch.setattr(hop_threads.os, "cpu_count", lambda: 8)
    assert hop_threads.configured_threads() == 2  # this machine's cores, not more
    monkeypatch.setattr(hop_threads.os, "cpu_count", lambda: 1)
    assert hop_threads.configured_threads() == 1
    assert LocalGraphStore().graph_threads == 1
    assert LocalGraphStore(threads=3).graph_threads == 3
    monkeypatch.setenv(ENV_THREADS, "3")
    assert LocalGraphStore().graph_threads == 3
    assert getattr(open_store(Home(tmp_path)), "graph_threads", None) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(ENV_THREADS, bad)
        with pytest.raises(ValueError, match=ENV_THREADS):
            open_store(Home(tmp_path))
    with pytest.raises(ValueError, match="at least 1"):
        LocalGraphStore(threads=0)


def test_a_forked_child_runs_its_ranges_on_a_pool_of_its_own() -> None:
    """The parent's pool threads do not survive a fork: the child starts its own."""
    hop_threads.run(lambda a, b, w: None, hop_threads.even_spans(4, 4), 2)  # the parent's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: every range done, on a new pool thread too
        names: set[str] = set()

        def part(a: int, b: int, _: int) -> None:
            time.sleep(0.01)
            names.add(threading.current_thread().name)

        hop_threads.run(part, hop_threads.even_spans(8, 8), 2)
        os.write(write, b"ok" if len(names) == 2 else b"one thread")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"ok" and status == 0
