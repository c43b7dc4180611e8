"""Numpy files written whole or not at all, and read memory-mapped where they can be.

``save_npz``: one .npz archive, written to a temporary name beside the target, then renamed
over it, so a crash mid-write never leaves a half-written model file.

``save_arrays``/``open_arrays``: a folder of ``.npy`` files, one per named array, which a load
maps read-only (``np.load(mmap_mode="r")``) instead of reading: no data is read until used, and
every process that opens the same folder (``marquee serve --workers N``) shares its pages
through the OS page cache instead of holding a private copy. A save writes a new folder beside
the target and renames it into place (the old one is moved aside first, then removed; a
process that mapped the old files keeps reading them: POSIX unlink semantics), the way
env.world replaces a world. ``open_arrays`` reads either layout, so files saved before the
folders still load (read into memory, not mapped). The embedded graph's files
(features.graph.local_files) use the same ``write_npy``/``read_npy``.
"""

from __future__ import annotations

import logging
import mmap
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

NPY = ".npy"


def save_npz(path: str | Path, **arrays: npt.ArrayLike | Any) -> Path:
    """Write ``arrays`` to ``path`` (an .npz) atomically; returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return path


def write_npy(path: Path, array: npt.ArrayLike) -> None:
    """One array to ``path`` (no pickles), flushed to disk before returning."""
    with open(path, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def read_npy(path: Path) -> npt.NDArray[Any]:
    """The array saved at ``path``, memory-mapped read-only; read when it cannot be mapped (an
    empty array). OSError/ValueError when the file is missing or not an array.

    The mapping comes back as a plain ``np.ndarray`` view of the ``np.memmap`` (the same pages,
    read-only; ``is_mapped`` and ``release_pages`` see through it): every index or slice of a
    memmap runs its Python-level ``__getitem__`` and ``__array_finalize__``, a few
    microseconds each, and a served slate's explanations take some 170 of them (a tenth of a
    recommendation's CPU on a 100K-movie graph)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array has nothing to map
        return np.load(path, allow_pickle=False)
    return mapped.view(np.ndarray)


def save_arrays(path: str | Path, arrays: Mapping[str, npt.ArrayLike]) -> Path:
    """Write ``arrays`` as ``<name>.npy`` files in the folder ``path`` (an ``.npz`` suffix
    dropped: ``catalog.npz`` saves the folder ``catalog``, and removes an older archive of that
    name), replacing what was there only once all are written (module doc); returns the
    folder. Names must be plain file names."""
    path = Path(path)
    folder = path.with_suffix("") if path.suffix == ".npz" else path
    for name in arrays:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"{name!r} cannot name an array file")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp = folder.with_name(f".{folder.name}.tmp-{tag}")
    tmp.mkdir()
    try:
        for name, array in arrays.items():
            write_npy(tmp / f"{name}{NPY}", array)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{tag}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path != folder and path.is_file():
        path.unlink()  # the archive an older save left: the folder replaces it
    return folder


class ArrayFolder(Mapping[str, npt.NDArray[Any]]):
    """The arrays of a ``save_arrays`` folder by name, each mapped on first access; read like
    an ``np.load`` archive (``files``, ``[name]``, ``with``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = sorted(p.name[: -len(NPY)] for p in folder.glob(f"*{NPY}"))
        self._loaded: dict[str, npt.NDArray[Any]] = {}

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        if name not in self._loaded:
            if name not in self.files:
                raise KeyError(f"{name} is not an array in {self.folder}")
            self._loaded[name] = read_npy(self.folder / f"{name}{NPY}")
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __enter__(self) -> ArrayFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # mapped arrays stay valid after the folder is "closed"


def arrays_path(path: str | Path) -> Path:
    """Where the arrays saved as ``path`` are: the folder ``path`` without an ``.npz`` suffix
    when it exists, else the archive ``path`` (an older save)."""
    path = Path(path)
    folder = path.with_suffix("") if path.suffix == ".npz" else path
    return folder if folder.is_dir() else path


def open_arrays(path: str | Path) -> Any:
    """The named arrays saved as ``path`` (``arrays_path``): an ArrayFolder, mapped, or an
    older .npz archive, read into memory (logged: such a bundle is not shared between
    processes). Use as a context manager, like ``np.load``."""
    found = arrays_path(path)
    if found.is_dir():
        return ArrayFolder(found)
    log.info("%s: an .npz archive, read into memory, not mapped (saved before .npy folders)", found)
    return np.load(found, allow_pickle=False)


def is_mapped(array: npt.NDArray[Any]) -> bool:
    """Whether ``array``'s memory is a file mapping (shared through the page cache)."""
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


def _file_mapping(array: npt.NDArray[Any]) -> np.memmap[Any, Any] | None:
    """The np.memmap of a whole file that ``array`` is all of (itself, or a plain view of it
    such as ``np.asarray`` gives), else None."""
    base: Any = array
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        base = base.base
    if not isinstance(base, np.memmap) or not isinstance(base.base, mmap.mmap):
        return None  # not mapped, or a view of a view (its offset attribute is the parent's)
    same = (
        base.ctypes.data == array.ctypes.data
        and base.shape == array.shape
        and base.dtype == array.dtype
        and base.flags.c_contiguous
        and array.flags.c_contiguous
    )
    return base if same else None


def release_pages(array: npt.NDArray[Any]) -> int:
    """Unmap from this process the pages wholly inside ``array`` when it is (a contiguous view
    of) a read-only file mapping; the bytes released (0 otherwise: held in memory, writable).

    For a pass over a large mapped array that the process will not make again soon: the pages
    it touched stay mapped, counted in its resident memory, until it exits (the 3.2M ratings'
    times and movies that recent popularity sums once at 500K movies: 49 MB a worker). The data
    is the file's, so nothing changes: the page cache keeps the pages, and the next read maps
    what it touches again (``madvise(MADV_DONTNEED)``, as serving.allocator.drop_mapped)."""
    base: Any = array
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        base = base.base
    if (
        not isinstance(base, np.memmap)
        or not isinstance(base.base, mmap.mmap)
        or array.flags.writeable
        or not array.flags.c_contiguous
        or not hasattr(mmap, "MADV_DONTNEED")
    ):
        return 0
    mm = base.base
    page = mmap.PAGESIZE
    start = array.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
    lo = -(-start // page) * page
    hi = (start + array.nbytes) // page * page
    if hi <= lo:
        return 0
    mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    return hi - lo


class RowReader:
    """``array.take(rows, axis)`` for rows far apart in a large mapped array, read from its
    file with ``preadv`` instead of through the mapping (the same bytes, so equal bit for bit).

    Why: touching a few bytes of a mapped file maps far more than its page. On the serving
    host's kernel (6.18) one element of a mapped .npy made ~1.5 MB resident (the page cache's
    large folios are mapped whole), so a hundred users' rows of the state's 122 MB pool table
    made all of it resident in every worker. Read this way, a request's rows cost a copy of
    those rows only; the file stays in the page cache, shared. An array that is not a whole
    file mapping (held in memory, a view) is indexed as usual."""

    def __init__(self, array: npt.NDArray[Any], axis: int = 0, min_bytes: int = 0) -> None:
        """``min_bytes``: below this size the array is indexed through its mapping (a small
        file's pages resident in every worker cost little; a ``preadv`` per request costs
        microseconds on every request)."""
        self.array = array
        self.axis = axis
        self.min_bytes = min_bytes
        shape = array.shape
        self._outer = int(np.prod(shape[:axis], dtype=np.int64))
        self._inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
        self._n = int(shape[axis])
        self._fd: int | None = None
        self._file = ""
        self._offset = 0
        whole = _file_mapping(array) if array.nbytes >= min_bytes else None
        if whole is not None and whole.filename is not None:
            self._file = str(whole.filename)
            self._fd = os.open(self._file, os.O_RDONLY)
            self._offset = int(whole.offset)

    def __getstate__(self) -> dict[str, Any]:
        """A copy (pickle: Ray workers) opens the file again, or indexes a copied array."""
        return {"array": self.array, "axis": self.axis, "min_bytes": self.min_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["array"], state["axis"], state.get("min_bytes", 0))  # type: ignore[misc]

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]

    @property
    def reads_file(self) -> bool:
        return self._fd is not None

    def take(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        """``np.take(array, rows, axis)`` for rows in [0, n) (IndexError otherwise)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self._fd is None:
            return np.take(self.array, rows, axis=self.axis)
        if rows.shape[0] and (rows.min() < 0 or rows.max() >= self._n):
            raise IndexError(f"row out of range [0, {self._n})")
        out = np.empty((self._outer, rows.shape[0], self._inner), dtype=self.array.dtype)
        row_bytes = self._inner * self.array.dtype.itemsize
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read
        starts, ends = np.r_[0, breaks].tolist(), np.r_[breaks, rows.shape[0]].tolist()
        for o in range(self._outer if rows.shape[0] else 0):
            for a, b in zip(starts, ends, strict=True):
                at = self._offset + ((o * self._n + int(rows[a])) * row_bytes)
                view = memoryview(out[o, a:b]).cast("B")  # type: ignore[arg-type]
                if os.preadv(self._fd, [view], at) != view.nbytes:
                    raise OSError(f"{self._file}: short read at {at}")
        shape = (*self.array.shape[: self.axis], rows.shape[0], *self.array.shape[self.axis + 1 :])
        return out.reshape(shape)
