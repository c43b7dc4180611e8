"""A real user's history, read from any graph store into the rows of one catalogue.

The store says what the user did (``GraphStore.user_movies``: rated, watched, dismissed);
this module turns it into the ``UserHistory`` the state builder and the candidate generator
read, as the simulator keeps one: ratings oldest first, watched and dismissed movies marked
seen. Movies the catalogue does not hold (added to the graph after the policy's world was
built) are ignored. ``with_rating`` is how one more rating joins a history (feedback's s').
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from features.catalog import Catalog
from features.graph.store import GraphStore, UnknownVertexError, UserMovies
from features.state import UserHistory

log = logging.getLogger(__name__)


class MovieKeys(Sequence[str]):
    """The catalogue's movie keys by row, as str, read from its (sorted, possibly mapped)
    array when asked: no list of 500K Python strings in every worker."""

    def __init__(self, keys: npt.NDArray[np.str_]) -> None:
        self._keys = keys

    @overload
    def __getitem__(self, row: int) -> str: ...

    @overload
    def __getitem__(self, row: slice) -> list[str]: ...

    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [str(k) for k in self._keys[row]]
        return str(self._keys[row])

    def __len__(self) -> int:
        return int(self._keys.shape[0])


class HistoryReader:
    """Reads users' histories from a store in the rows of ``catalog``: keys are found by binary
    search in the catalogue's sorted keys (no key -> row table of its own)."""

    def __init__(self, catalog: Catalog) -> None:
        self.n_movies = catalog.n_movies
        self._sorted = catalog.movie_keys
        self.keys = MovieKeys(catalog.movie_keys)

    def rows(self, keys: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The catalogue rows of movie keys, -1 for keys it does not hold."""
        arr = np.asarray(keys, dtype=object).reshape(-1)
        if arr.shape[0] == 0 or self.n_movies == 0:
            return np.full(arr.shape[0], -1, dtype=np.int64)
        wanted = arr.astype(str)
        pos = np.minimum(np.searchsorted(self._sorted, wanted), self.n_movies - 1)
        return np.where(self._sorted[pos] == wanted, pos, -1).astype(np.int64)

    def row(self, key: str) -> int | None:
        """The catalogue row of one movie key, None if it holds no such movie."""
        found = int(self.rows([key])[0])
        return None if found < 0 else found

    def read(self, store: GraphStore, user: str) -> UserHistory | None:
        """The user's history, or None for a user the store does not hold."""
        try:
            found = store.user_movies(user)
        except UnknownVertexError:
            return None
        return self.from_movies(found)

    def from_movies(self, found: UserMovies) -> UserHistory:
        """The history of what ``GraphStore.user_movies`` returned for a user."""
        rows = self.rows(found.rated)
        keep = rows >= 0  # movies the policy's world does not know are ignored
        rows, ratings, stamps = rows[keep], found.ratings[keep], found.timestamps[keep]
        order = np.lexsort((rows, stamps))
        last = float(stamps.max()) if stamps.shape[0] else None
        history = UserHistory.from_ratings(
            self.n_movies, rows[order], ratings[order], last_time=last
        )
        seen = self.rows(found.seen)
        history.seen[seen[seen >= 0]] = True  # mark_seen for each
        return history


def history_digest(found: UserMovies) -> bytes:
    """A fingerprint of everything a user's history is built from (rated movies with ratings
    and times, seen movies, in the store's order): equal digests, equal histories. Caches of
    what is computed from a history compare it to tell whether the user changed."""
    h = hashlib.blake2b(digest_size=16)
    for keys in (found.rated, found.seen):
        h.update(len(keys).to_bytes(8, "little"))
        for key in keys:
            raw = str(key).encode()
            h.update(len(raw).to_bytes(4, "little"))
            h.update(raw)
    for values in (found.ratings, found.timestamps):
        h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.digest()


def with_rating(history: UserHistory, row: int, rating: float) -> UserHistory:
    """``history`` with ``row`` rated ``rating`` as its latest entry (an earlier rating of the
    same movie removed, so a rating the graph already holds is not counted twice); seen marks
    are kept."""
    if row in history.items:
        keep = [i for i, m in enumerate(history.items) if m != row]
        rebuilt = UserHistory.from_ratings(
            history.n_movies,
            [history.items[i] for i in keep],
            [history.ratings[i] for i in keep],
            min_rating=history.min_rating,
            last_time=history.last_time,
        )
        rebuilt.seen |= history.seen
        history = rebuilt
    history.add(row, rating)
    return history
