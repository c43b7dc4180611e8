"""The worker's allocator housekeeping: mapped file pages a load read are unmapped from the
process (the data stays readable), and the malloc and pyarrow calls are harmless."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from serving import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc, /proc")


def _resident_kb(path: Path) -> int:
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) >= 6 and head[5] == str(path)
        elif inside and head and head[0] == "Rss:":
            total += int(head[1])
    return total


def test_drop_mapped_unmaps_what_a_scan_made_resident_and_the_data_stays(tmp_path: Path) -> None:
    values = np.arange(2_000_000, dtype=np.float64)
    np.save(tmp_path / "a.npy", values)
    other = tmp_path.parent / f"{tmp_path.name}-other.npy"
    np.save(other, values)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    elsewhere = np.load(other, mmap_mode="r")
    assert float(mapped.sum()) == float(values.sum()) == float(elsewhere.sum())
    assert _resident_kb(tmp_path / "a.npy") > 10_000
    assert allocator.drop_mapped(tmp_path) >= values.nbytes
    assert _resident_kb(tmp_path / "a.npy") == 0
    assert _resident_kb(other) > 10_000  # outside the folder: left alone
    assert np.array_equal(mapped, values)  # read again from the page cache
    other.unlink()


def test_tune_and_release_are_harmless() -> None:
    import pyarrow as pa

    assert allocator.tune() in (True, False)
    big = pa.array(["x" * 100] * 100_000)
    del big
    allocator.release()
    assert np.array_equal(np.ones(300_000).cumsum()[-3:], [299_998.0, 299_999.0, 300_000.0])


def test_tuned_malloc_reuses_freed_large_blocks_instead_of_fresh_pages() -> None:
    """After ``tune``, vectors like a 500K-movie request's (4 MB each) freed by one request are
    where the next one's land: no fresh pages to fault in. glibc's default hands the top of
    the heap back once 2x its threshold (~8 MB here) is free there, so the second round would
    fault every page again (each np.ones touches all of its ~980 pages)."""
    import resource

    if not allocator.tune():
        pytest.skip("glibc's mallopt is not available")

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    n, count = 500_000, 8
    held = [np.ones(n) for _ in range(count)]
    del held
    before = faults()
    held = [np.ones(n) for _ in range(count)]
    pages = count * n * 8 // 4096
    assert faults() - before < pages // 4
    assert all(float(a.sum()) == n for a in held)
