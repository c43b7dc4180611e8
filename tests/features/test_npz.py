"""features.npz.release_pages: a mapped array's pages leave the process, its data does not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from features.npz import is_mapped, read_npy, release_pages, write_npy

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps")


def resident_kb(path: Path) -> int:
    """Rss (kB) of this process's mappings of ``path``, from /proc/self/smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and not head[0].endswith(":") and len(head) >= 5:
            inside = len(head) == 6 and head[5] == str(path)
        elif inside and head[0] == "Rss:":
            total += int(head[1])
    return total


@linux
def test_release_pages_unmaps_a_read_mapped_array_and_keeps_its_data(tmp_path: Path) -> None:
    values = np.random.default_rng(0).random(400_000)  # 3.2 MB
    path = tmp_path / "a.npy"
    write_npy(path, values)
    mapped = read_npy(path)
    total = float(np.asarray(mapped).sum())  # reads every page
    assert resident_kb(path) > 3000
    view = np.asarray(mapped, dtype=np.float64)[1000:300_000]  # a view, as callers hold
    released = release_pages(view)
    assert released > 0.9 * view.nbytes
    assert resident_kb(path) < 3200 - released // 1024 + 16
    assert float(np.asarray(mapped).sum()) == total  # read again from the page cache
    np.testing.assert_array_equal(mapped, values)


def test_release_pages_leaves_arrays_in_memory_alone() -> None:
    a = np.arange(100_000, dtype=np.float64)
    a.setflags(write=False)
    assert release_pages(a) == 0 and release_pages(np.arange(10)) == 0
    assert a[-1] == 99_999.0


def test_read_npy_maps_the_file_as_a_plain_read_only_array(tmp_path: Path) -> None:
    """read_npy's array is file-mapped and read-only but a plain ndarray: its slices are plain
    arrays too (np.memmap's Python-level indexing is what it avoids), with the same data."""
    want = np.arange(1000, dtype=np.int64)
    write_npy(tmp_path / "a.npy", want)
    got = read_npy(tmp_path / "a.npy")
    assert type(got) is np.ndarray and is_mapped(got) and not got.flags.writeable
    part = got[10:20]
    assert type(part) is np.ndarray and is_mapped(part)
    assert np.array_equal(got, want)
    assert release_pages(got) >= 0  # still seen as a file mapping
