"""A worker's allocators: give freed memory back to the OS instead of keeping it resident.

Measured at 500K movies (experiments/bench/worker_memory.py, scale.py --workers), hundreds
of MB a worker no longer used stayed resident:

- pandas' string columns live in pyarrow's memory pool (mimalloc), which keeps what is freed
  for reuse: building the popularity fallback reads the 4M-rating edge frame once and left
  ~150 MB there. ``release`` returns it, with glibc's free pages (``malloc_trim``).
- glibc malloc gives every thread that allocates its own arena (up to 8 per core; the
  service's requests run on a pool of threads), each keeping its own high-water mark of freed
  blocks. ``tune`` caps the arenas at two. (Fixing the mmap threshold low, so that every 4 MB
  per-movie array is mapped and unmapped, saved ~50 MB more but cost each request ~140 ms of
  page faults at 500K movies: not done.)
- the other way round, glibc's default maps a large block fresh until one is freed, and gives
  the top of a heap back as soon as 2x that threshold is free there: at 500K movies a request's
  4 MB per-movie vectors kept landing on fresh pages (a day's popularity first computed into
  them cost ~12 ms more), the slowest 5% of a new worker's first requests. ``tune`` serves
  blocks below ``MMAP_THRESHOLD`` from the heap and keeps up to ``TRIM_THRESHOLD`` free at its
  top for the next request (experiments/bench/scale.py at 500K, with the helper thread and
  the popularity's warm days: p95 ~26 -> ~19 ms before the retriever's top moved to the
  helper, p99 25-27 -> 17-19 ms after; the worker's resident memory no higher); ``release``
  still trims on purpose.
- a load reads some mapped files whole once (the popularity fallback scans every rating of
  the graph; the bundle compares its key arrays), and those pages stay mapped in the worker
  (resident, though shared through the page cache) long after: ~230 MB at 500K movies.
  ``drop_mapped`` unmaps them from the worker's page tables (``madvise(MADV_DONTNEED)`` on
  read-only file mappings under the home folder); the page cache keeps them, and a later
  read maps what it touches again.

All are no-ops where they do not apply (no glibc, pyarrow not loaded, no /proc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MADV_DONTNEED = 4
ARENAS = 2  # arenas all threads share (glibc's default: 8 per core)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: blocks below it come from the heap
TRIM_THRESHOLD = 128 * 2**20  # free bytes a heap's top keeps before going back to the OS


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018  (glibc, not musl: musl has no mallopt)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune() -> bool:
    """Cap glibc's arenas and keep large freed blocks for reuse (module doc), before the
    request threads start; True when all applied."""
    libc = _libc()
    if libc is None:
        return False
    applied = [  # each one whatever the others did (a list: ``all`` would stop at a refusal)
        bool(libc.mallopt(param, value))
        for param, value in (
            (M_ARENA_MAX, ARENAS),
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    ]
    ok = all(applied)
    log.debug("malloc tuned: %d arenas, large blocks kept for reuse (%s)", ARENAS, ok)
    return ok


def release() -> None:
    """Return the memory freed so far to the OS: pyarrow's pool (if pyarrow is loaded) and
    glibc's free pages. Call after a load whose temporaries are gone."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def drop_mapped(folder: Path) -> int:
    """Unmap from this process the resident pages of read-only file mappings under
    ``folder`` (module doc); the bytes of mappings dropped. Safe for read-only mappings: the
    data is the file's, read again from the page cache when next touched."""
    libc = _libc()
    maps = Path("/proc/self/maps")
    if libc is None or not maps.exists():
        return 0
    prefix = str(folder.resolve()) + "/"
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    dropped = 0
    for line in maps.read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].startswith(prefix) or "w" in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if libc.madvise(start, end - start, MADV_DONTNEED) == 0:
            dropped += end - start
    log.debug("dropped the mapped pages of %d MB of files under %s", dropped >> 20, folder)
    return dropped
