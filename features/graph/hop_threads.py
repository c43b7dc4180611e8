"""A few threads for the 3-hop query's compiled passes (features.graph.hop_top): a pass cut
into ranges of rows (or columns) that the calling thread and pool threads take in turn.

Why plain threads: the kernels (features.graph.hop_kernels) are compiled ``nogil``, so two
Python threads each running one on its own range use both cores. Numba's ``parallel=True``
needs a thread-safe threading layer, since the service queries from a thread pool (its
default workqueue layer aborts the process when two threads enter parallel kernels at once).
Here TBB is not installed (numba's tbbpool cannot load libtbb.so.12); GNU OpenMP is (numba's
omp layer loads libgomp), thread-safe but not fork-safe with GNU's runtime, and not tried.
Plain threads also keep the ranges ours: which movies a thread sums, so the results are the
one-thread ones by construction, and a task (the hub column sums) run beside a pass's ranges.

Each range's results are those of the whole pass bit for bit: a movie's row sum depends only
on its row, and the non-hub column counts scattered by each thread into its own array are
exact float32 integers, so their sum is too (hop_top.first_two_hops gives the argument; the
tests in tests/features/graph/test_hop_kernels.py and test_hop_top.py compare 1, 2, 3 and 5
threads bit for bit). The hub column sums are float64 sums in movie order, which ranges of
movies would reorder, and summed per column along B^T's rows (which ranges of columns could
share out) they took 41-73 ms instead of 13-16 at 500K (a cache miss per entry where the
scatter reads x once in order; load 4-6): they stay one pass, run beside the non-hub
scatter's ranges where there is one. The ranges are more than the threads
(``BLOCKS_PER_THREAD``) and taken from a shared counter, so that a thread the OS has parked
on this shared machine does not hold a pass up: the others take its remaining ranges (as
features.graph.matvec does for scipy's products). A pass smaller than ``PARALLEL_MIN_WORK``
runs on the calling thread alone, with no hand-off.

MARQUEE_GRAPH_THREADS sets the thread count (the caller included); unset, ``min(2, CPUs)``:
this machine's two cores. 1 runs every pass on the calling thread, as before threads.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

ENV_THREADS = "MARQUEE_GRAPH_THREADS"
DEFAULT_MAX_THREADS = 2  # this machine's cores; more threads than cores only contend
# entries (slots) a pass reads below which it runs on the calling thread: at 500K movies a
# hub pass reads 4.5M slots in ~2.5 ms, so 500K slots are ~0.3 ms, a few hand-offs' worth
PARALLEL_MIN_WORK = 500_000
BLOCKS_PER_THREAD = 2

_pool: ThreadPoolExecutor | None = None
_pool_helpers = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there; start a new pool."""
    global _pool, _pool_helpers, _pool_lock
    _pool, _pool_helpers, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def default_threads() -> int:
    """``min(DEFAULT_MAX_THREADS, CPUs)``, at least 1."""
    return max(1, min(DEFAULT_MAX_THREADS, os.cpu_count() or 1))


def configured_threads() -> int:
    """$MARQUEE_GRAPH_THREADS (a whole number >= 1), else ``default_threads()``."""
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return default_threads()
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_THREADS} must be a whole number, got {raw!r}") from None
    if threads < 1:
        raise ValueError(f"{ENV_THREADS} must be at least 1, got {threads}")
    return threads


def resolve(threads: int | None) -> int:
    """``threads``, or the configured count when None."""
    if threads is None:
        return configured_threads()
    if threads < 1:
        raise ValueError(f"graph threads must be at least 1, got {threads!r}")
    return threads


def _helpers(n: int) -> ThreadPoolExecutor:
    """The pool, created on first use with ``n`` threads (grown, never shrunk, if a caller
    asks for more later: stores of different thread counts share it)."""
    global _pool, _pool_helpers
    with _pool_lock:
        if _pool is None or _pool_helpers < n:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its running ranges finish; their caller waits
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="graph-hop")
            _pool_helpers = n
            log.debug("graph hop pool: %d threads", n)
        return _pool


def even_spans(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges ``[a, b)`` covering ``0..n`` in order, of sizes differing by at most
    one (empty ones when ``parts > n``)."""
    cuts = np.linspace(0, n, max(1, parts) + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in itertools.pairwise(cuts)]


def weighted_spans(cumulative: npt.NDArray[np.integer], parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges covering ``0..n`` in order, of about equal work, where ``cumulative``
    (n + 1 entries from 0, non-decreasing) is the work before each index (a CSR indptr: the
    row blocks of features.graph.matvec)."""
    cum = np.asarray(cumulative)
    n = cum.shape[0] - 1
    parts = max(1, parts)
    targets = np.linspace(int(cum[0]), int(cum[-1]), parts + 1)[1:-1]
    cuts = np.minimum(np.searchsorted(cum, targets), n)  # non-decreasing: so are the targets
    return list(itertools.pairwise([0, *(int(c) for c in cuts), n]))


def blocks(threads: int, work: int, min_work: int | None = None) -> int:
    """How many ranges a pass of ``work`` (entries) is cut into: 1 (the calling thread alone)
    when one thread is asked for or ``work < min_work`` (default ``PARALLEL_MIN_WORK``), else
    ``BLOCKS_PER_THREAD`` per thread."""
    least = PARALLEL_MIN_WORK if min_work is None else min_work
    return 1 if threads <= 1 or work < least else threads * BLOCKS_PER_THREAD


def run(part: Callable[[int, int, int], None], spans: list[tuple[int, int]], threads: int) -> None:
    """``part(a, b, worker)`` for every span ``[a, b)`` (``run_tasks``)."""
    run_tasks([functools.partial(part, a, b) for a, b in spans], threads)


def run_tasks(tasks: list[Callable[[int], None]], threads: int) -> None:
    """``task(worker)`` for every task: on the calling thread (worker 0) alone for a single
    task or ``threads == 1``, else on it and up to ``threads - 1`` pool threads (workers
    1..), each taking the next task, in the list's order, until none is left. A worker's
    tasks run one after another, so ``worker`` can pick a per-worker output. Returns when
    every task is done; an exception from any is raised here, after the others finished."""
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task(0)
        return
    claim = itertools.count()  # next() on a count is atomic under the GIL

    def drain(worker: int) -> None:
        for i in iter(lambda: next(claim), None):
            if i >= len(tasks):
                return
            tasks[i](worker)

    n_help = min(threads, len(tasks)) - 1
    pool = _helpers(threads - 1)
    helpers: list[Future[None]] = [pool.submit(drain, w) for w in range(1, n_help + 1)]
    error: BaseException | None = None
    try:
        drain(0)
    except BaseException as e:  # the helpers may still be writing: wait for them first
        error = e
    for f in helpers:
        if f.cancel():  # still queued (the pool busy with another query): nothing left for it
            continue
        failed = f.exception()  # waits for the helper's last range
        error = error or failed
    if error is not None:
        raise error
