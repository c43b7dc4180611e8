"""The popularity definitions, each named for what it counts.

- ``rating_counts``: how many users rated a movie at all (the Catalog's ``popularity``: the
  simulator's and the candidate generator's popular fallbacks, the popularity baselines);
- ``liked_counts``: how many users rated it ``POSITIVE_RATING`` or more (the service's
  cold-start recommender: popular *and* liked, so a much-rated flop does not lead the slate);
- ``RecentPopularity``: ratings before a given time, decayed by age (the blend retriever's
  prior for users with short histories, ``features.blend``).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.blas import axpy
from features.graph.schema import POSITIVE_RATING
from features.npz import release_pages


def rating_counts(movie_rows: npt.ArrayLike, n_movies: int) -> npt.NDArray[np.int64]:
    """Per movie row, the number of ratings it received (``movie_rows``: one entry each)."""
    rows = np.asarray(movie_rows, dtype=np.int64)
    return np.bincount(rows, minlength=n_movies).astype(np.int64)


def liked_counts(rated: pd.DataFrame, min_rating: float = POSITIVE_RATING) -> pd.Series:
    """Per movie key (``dst`` of a ``rated`` edge frame), the number of ratings of at least
    ``min_rating``; movies without one are absent."""
    liked = rated[rated["rating"] >= min_rating]
    return liked.groupby(liked["dst"].astype(str)).size()


# Tables with at least this many ratings compute a day's scores from the nearest earlier
# cached day (the decay factors out), not from every rating before it: on 3.2M ratings a day
# cost 0.85 s. Smaller tables (ml-latest-small: 100K) keep the direct sum, bit for bit.
INCREMENTAL_MIN_RATINGS = 1_000_000
# Per-day tables cached: up to 256 days, and no more than this many bytes of them (at 500K
# movies one day is 4 MB, and each user's last day can differ). The raw decayed counts get the
# whole budget: a miss starts from the nearest earlier cached day, so they keep misses cheap.
DAY_CACHE_DAYS = 256
DAY_CACHE_BYTES = 64 * 2**20
# What is derived from a day's raw counts without another pass over the ratings (the log1p
# scores here, features.blend's z-scores of them) keeps a few days, not another 64 MB per cache
# and worker: a miss costs one elementwise pass over the movies when the raw day is cached.
DERIVED_CACHE_BYTES = 16 * 2**20
# Large tables also keep the decayed counts at a few fixed days, spread over the table by
# rating count and built in one pass at the first day asked (``Checkpoints``), so a day with no
# cached day before it, or only a distant one, starts from the nearest checkpoint, at most
# 1/(n + 1) of the ratings back, instead of from every rating before it: at 500K movies such
# days (a user whose last rating is older than every day asked so far) cost ~12 ms of a first
# request, and made its slowest 5%. As many checkpoints as fit in this budget (8 at 500K
# movies), at most MAX_CHECKPOINTS.
CHECKPOINT_BYTES = 32 * 2**20
MAX_CHECKPOINTS = 32
# A pass over at least this many ratings unmaps their pages afterwards (features.npz
# .release_pages): the first day a worker computes sums every rating before it, later days
# only those since a cached day, so those pages would sit resident for nothing (49 MB a
# worker at 500K movies). No effect on arrays held in memory, nor on the scores.
RELEASE_MIN_RATINGS = 1_000_000


class DayCache:
    """A bounded least-recently-used map of day -> per-movie vector (thread-safe)."""

    def __init__(self, n_movies: int, max_bytes: int | None = None) -> None:
        budget = DAY_CACHE_BYTES if max_bytes is None else max_bytes
        self.size = max(2, min(DAY_CACHE_DAYS, budget // max(8 * n_movies, 1)))
        self._items: OrderedDict[int, npt.NDArray[np.float64]] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:
        """A copy (pickle, deepcopy: Ray workers, gymnasium's env checker) starts empty; a
        lock cannot be pickled, and a cache need not travel."""
        return {"size": self.size}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.size = state["size"]
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, day: int) -> npt.NDArray[np.float64] | None:
        with self._lock:
            hit = self._items.get(day)
            if hit is not None:
                self._items.move_to_end(day)
            return hit

    def put(self, day: int, value: npt.NDArray[np.float64]) -> None:
        with self._lock:
            self._items[day] = value
            self._items.move_to_end(day)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def days(self) -> list[int]:
        with self._lock:
            return list(self._items)


class Checkpoints:
    """Decayed counts at fixed days (see CHECKPOINT_BYTES), built by the first
    ``latest_before`` (thread-safe: one thread builds, the others wait for it). A copy
    (pickle, deepcopy) starts unbuilt, as DayCache starts empty."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: npt.NDArray[np.int64] | None = None
        self._counts: list[npt.NDArray[np.float64]] = []

    def __getstate__(self) -> dict[str, int]:
        return {}

    def __setstate__(self, state: dict[str, int]) -> None:
        self._lock = threading.Lock()
        self._days = None
        self._counts = []

    def latest_before(
        self, day: int, pop: RecentPopularity
    ) -> tuple[int, npt.NDArray[np.float64]] | None:
        """The latest checkpoint on or before ``day`` (its day and counts), or None."""
        if self._days is None:
            with self._lock:
                if self._days is None:
                    self._counts = pop._checkpoint_counts(days := pop._checkpoint_days())
                    self._days = days
        at = int(np.searchsorted(self._days, day, side="right")) - 1
        return None if at < 0 else (int(self._days[at]), self._counts[at])


@dataclass(frozen=True, eq=False)
class RecentPopularity:
    """What people were watching at a given time: every rating before ``at`` weighted by
    half weight every ``half_life_days`` back, summed per movie, log1p. A user's next choices
    follow what was popular when they chose (new releases, the era's classics), which
    all-time counts miss: on ml-latest-small's cold users it ranks .42 P@10 against .37.
    Only ratings from before the day of ``at`` count, so replaying history never reads the
    future, and one table serves a whole day."""

    timestamps: npt.NDArray[np.float64]  # ascending
    movies: npt.NDArray[np.int64]  # movie row of each timestamp
    n_movies: int
    half_life_days: float = 180.0
    name: str = "recent-popularity"

    @classmethod
    def fit(
        cls, ratings: pd.DataFrame, n_movies: int, half_life_days: float = 180.0
    ) -> RecentPopularity:
        """From a ratings frame with columns movie (catalogue row) and timestamp (seconds)."""
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, got {half_life_days}")
        ts = ratings["timestamp"].to_numpy().astype(np.float64)
        order = np.argsort(ts, kind="stable")
        movies = ratings["movie"].to_numpy().astype(np.int64)[order]
        return cls(ts[order], movies, n_movies, half_life_days)

    @property
    def latest(self) -> float:
        """The time of the last rating (the reference when a history carries no time)."""
        return float(self.timestamps[-1]) if self.timestamps.shape[0] else 0.0

    def day_of(self, at: float | None) -> int:
        """The day (since the epoch) of time ``at`` in seconds; None: the latest rating's."""
        return int((self.latest if at is None else float(at)) // 86_400)

    def scores_at(self, at: float | None) -> npt.NDArray[np.float64]:
        """log1p of the decayed rating counts of every movie row at time ``at`` (seconds;
        None: the latest rating's time)."""
        return self.scores_on(self.day_of(at))

    def scores_on(self, day: int) -> npt.NDArray[np.float64]:
        """The scores as of the start of ``day`` (days since the epoch), read-only, cached per
        day (``day_cache``)."""
        cache = self._cache
        hit = cache.get(day)
        if hit is None:
            hit = np.log1p(self._decayed(day))
            hit.setflags(write=False)
            cache.put(day, hit)
        return hit

    def _decayed(self, day: int) -> npt.NDArray[np.float64]:
        """Decayed rating counts per movie before ``day`` began (cached raw on large tables)."""
        t = day * 86_400.0  # ratings before the day began: never the future
        hi = int(np.searchsorted(self.timestamps, t, side="left"))
        if self.timestamps.shape[0] < INCREMENTAL_MIN_RATINGS:
            return self._direct(t, 0, hi)
        # 2^-(t - t_i)/h = 2^-(t - t0)/h * 2^-(t0 - t_i)/h: decay an earlier day's sums and add
        # the ratings in between, instead of reweighting every rating before the day
        raw = self._raw
        earlier = [d for d in raw.days() if d <= day]
        cached = raw.get(max(earlier)) if earlier else None
        start = (max(earlier), cached) if cached is not None else None
        fixed = self._checkpoints.latest_before(day, self)
        if fixed is not None and (start is None or fixed[0] > start[0]):
            start = fixed
        out = self._direct(t, 0, hi) if start is None else self._from(start, t, hi)
        out.setflags(write=False)
        raw.put(day, out)
        return out

    def _from(
        self, start: tuple[int, npt.NDArray[np.float64]], t: float, hi: int
    ) -> npt.NDArray[np.float64]:
        """The counts at time ``t`` (ratings ``:hi``) from an earlier day's: decayed, plus the
        ratings in between."""
        t0 = start[0] * 86_400.0
        lo = int(np.searchsorted(self.timestamps, t0, side="left"))
        decay = np.exp2(-(t - t0) / 86_400.0 / self.half_life_days)
        return self._direct(t, lo, hi, start[1], decay)

    def _checkpoint_days(self) -> npt.NDArray[np.int64]:
        """The checkpoints' days: the days of the ratings at k / (n + 1) of the table."""
        n = self.timestamps.shape[0]
        k = max(1, min(MAX_CHECKPOINTS, CHECKPOINT_BYTES // max(8 * self.n_movies, 1)))
        at = np.arange(1, k + 1, dtype=np.int64) * n // (k + 1)
        return np.unique((self.timestamps[at] // 86_400).astype(np.int64))

    def _checkpoint_counts(self, days: npt.NDArray[np.int64]) -> list[npt.NDArray[np.float64]]:
        """The decayed counts at each of ``days`` (ascending), each from the one before: one
        pass over the ratings (whose pages are unmapped after it, as after any long pass)."""
        out: list[npt.NDArray[np.float64]] = []
        for i, day in enumerate(days.tolist()):
            t = day * 86_400.0
            hi = int(np.searchsorted(self.timestamps, t, side="left"))
            counts = self._direct(t, 0, hi) if i == 0 else self._from((days[i - 1], out[-1]), t, hi)
            counts.setflags(write=False)
            out.append(counts)
        if out and hi >= RELEASE_MIN_RATINGS:
            release_pages(self.timestamps[:hi])
            release_pages(self.movies[:hi])
        return out

    def prepare(self) -> None:
        """On a large table, build the checkpoints and the latest days' tables now, not on
        first requests: the days whose users are active now, and the memory every later miss
        reuses (a day first computed into fresh pages cost ~12 ms more at 500K movies: the
        slowest 5% of a new worker's first requests)."""
        if self.timestamps.shape[0] < INCREMENTAL_MIN_RATINGS:
            return
        last = self.day_of(None) + 1  # the day after the last rating: every rating counts
        scored = last - self._cache.size  # the days after it also get their log1p scores
        for day in range(last - self._raw.size + 1, last + 1):
            if day > scored:
                self.scores_on(day)
            else:
                self._decayed(day)

    @functools.cached_property
    def _checkpoints(self) -> Checkpoints:
        return Checkpoints()

    def _direct(
        self,
        t: float,
        lo: int,
        hi: int,
        start: npt.NDArray[np.float64] | None = None,
        decay: float = 1.0,
    ) -> npt.NDArray[np.float64]:
        """The decayed weights at time ``t`` of ratings ``lo:hi`` summed per movie, plus
        ``decay`` x ``start`` when given (added in place: one fresh vector, not three)."""
        age_days = (t - self.timestamps[lo:hi]) / 86_400.0
        weights = np.exp2(-age_days / self.half_life_days)
        counts: npt.NDArray[np.float64] = np.bincount(
            self.movies[lo:hi], weights=weights, minlength=self.n_movies
        ).astype(np.float64, copy=False)
        if hi - lo >= RELEASE_MIN_RATINGS:
            release_pages(self.timestamps[lo:hi])
            release_pages(self.movies[lo:hi])
        if start is not None:
            axpy(decay, start, counts)
        return counts

    @functools.cached_property
    def _cache(self) -> DayCache:
        return DayCache(self.n_movies, DERIVED_CACHE_BYTES)

    @functools.cached_property
    def _raw(self) -> DayCache:
        return DayCache(self.n_movies)

    def arrays(self) -> dict[str, Any]:
        return {
            "timestamps": self.timestamps,
            "movies": self.movies,
            "n_movies": np.int64(self.n_movies),
            "half_life_days": np.float64(self.half_life_days),
        }

    @classmethod
    def from_arrays(cls, z: Any) -> RecentPopularity:
        return cls(
            np.asarray(z["timestamps"], dtype=np.float64),
            np.asarray(z["movies"], dtype=np.int64),
            int(z["n_movies"]),
            float(z["half_life_days"]),
        )
