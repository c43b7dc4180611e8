"""The blend retriever: the base score the served ranking and the simulator add the agent to.

score = z(EASE) + w_als max(0, 1 - n0 / n) z(ALS) + w_popularity min(1, n0 / n) z(recent
popularity at the user's time), each z-scored over all movies (``zscores``), n the user's
history length.

Why each part, on ml-latest-small (``experiments/retriever_sweep.py`` gives the figures):
EASE with recency weights (half weight every 3 interactions back) is the strongest single
model on a time split; ALS adds what
co-consumption at a coarser grain knows (+5% P@10 at weight 0.3) once a history is long
enough to fold in (on 10 interactions it costs 7%), so its weight grows from 0 at ``n0``
interactions; what was popular when the user chose matters most when their history is short
(cold users, 10 interactions: +13%), so its weight shrinks as 1/n past ``n0`` interactions
and barely touches long histories.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.als import AlsRetriever
from features.blas import axpy, single_threaded
from features.npz import open_arrays, save_arrays
from features.popularity import DayCache, RecentPopularity
from features.retrieval import EaseRetriever, Scores, mean_sd, zscores
from features.state import UserHistory

log = logging.getLogger(__name__)

# Catalogues of at least this many movies score on one BLAS thread (features.blas; measured at
# 100K and 500K). Below it the products are small, and entering the limit (~0.06 ms) was 7% of
# a blend's scores on ml-latest-small (9.7K movies) for nothing.
SINGLE_THREAD_MIN_MOVIES = 50_000


@dataclass(frozen=True, eq=False)
class BlendRetriever:
    """EASE + ALS + recent popularity, z-scored and weighted (module doc)."""

    ease: EaseRetriever
    als: AlsRetriever | None = None
    popularity: RecentPopularity | None = None
    w_als: float = 0.3
    w_popularity: float = 0.5
    popularity_n0: float = 10.0
    name: str = "blend"

    def __post_init__(self) -> None:
        for part in (self.als, self.popularity):
            if part is not None and part.n_movies != self.ease.n_movies:
                raise ValueError(
                    f"{part.name} covers {part.n_movies} movies, EASE {self.ease.n_movies}"
                )

    @property
    def n_movies(self) -> int:
        return self.ease.n_movies

    @classmethod
    def fit(
        cls,
        ratings: pd.DataFrame,
        n_movies: int,
        *,
        w_als: float = 0.3,
        w_popularity: float = 0.5,
        popularity_n0: float = 10.0,
        half_life_days: float = 180.0,
        ease_half_life: float = 3.0,
        seed: int = 0,
    ) -> BlendRetriever:
        """Fit every part on a ratings frame with columns user, movie (catalogue row) and,
        for the popularity part, timestamp (left out when the frame has none)."""
        ease = EaseRetriever.fit(ratings, n_movies, half_life=ease_half_life)
        als = AlsRetriever.fit(ratings, n_movies, seed=seed) if w_als > 0 else None
        pop = (
            RecentPopularity.fit(ratings, n_movies, half_life_days)
            if w_popularity > 0 and "timestamp" in ratings
            else None
        )
        return cls(ease, als, pop, w_als, w_popularity, popularity_n0)

    def popularity_weight(self, n: int) -> float:
        """The popularity part's weight for a history of ``n`` interactions."""
        return self.w_popularity * min(1.0, self.popularity_n0 / max(n, 1))

    def als_weight(self, n: int) -> float:
        """The ALS part's weight for a history of ``n`` interactions."""
        return self.w_als * max(0.0, 1.0 - self.popularity_n0 / max(n, 1))

    def scores(self, history: UserHistory) -> Scores:
        """The blend of every movie row (module doc), written in as few passes over the
        movies as the parts allow (``_fused``): equal to ``reference_scores`` up to the order
        of additions and the ALS statistics' closed form (~1e-7 relative, tested). Its
        vector products run on one BLAS thread (features.blas: the same values, less CPU
        beside other work)."""
        if self.n_movies < SINGLE_THREAD_MIN_MOVIES:
            return self._fused(history)
        with single_threaded():
            return self._fused(history)

    def reference_scores(self, history: UserHistory) -> Scores:
        """The blend as the module doc writes it, every part z-scored over a full vector:
        what ``scores`` is checked against (tests, experiments/bench/first_request.py)."""
        # an empty history scores zeros, not the z-scores of EASE's constant minimum fill
        out = zscores(self.ease.scores(history)) if history.items else np.zeros(self.n_movies)
        w_als = self.als_weight(len(history.items))
        if self.als is not None and w_als > 0:
            out += w_als * zscores(self.als.scores(history))
        if self.popularity is not None and self.w_popularity:
            day = self.popularity.day_of(history.last_time)
            weight = self.popularity_weight(len(history.items))
            out += weight * zscores(self.popularity.scores_on(day))
        return out

    def _fused(self, history: UserHistory) -> Scores:
        """One dense vector, built in place. EASE scores only its covered rows (6,000 at
        500K movies) and gives every other movie their minimum, so its z-scores are one
        constant plus a few thousand values, with mean and variance summed over the covered
        rows; ALS's mean and variance come in closed form from the user vector
        (``AlsRetriever.score_moments``), so its scores are scaled once into the output;
        the day's popularity scores (cached per day, features.popularity) are scaled into it
        with their mean and standard deviation, kept per day (``_popularity_moments``). The
        constant offsets are added in one pass. A first request at 500K movies made ~25
        passes over the movies here, now ~4 plus the ALS product."""
        n_items = len(history.items)
        out = np.zeros(self.n_movies)
        offset = 0.0
        w_als = self.als_weight(n_items)
        if self.als is not None and w_als > 0:
            user = self.als.user_vector(history)
            mean, sd = self.als.score_moments(user)
            if sd > 1e-12:
                np.multiply(self.als.raw_scores(user), w_als / sd, out=out, dtype=np.float64)
                offset -= w_als * mean / sd
        if self.popularity is not None and self.w_popularity:
            day = self.popularity.day_of(history.last_time)
            scores = self.popularity.scores_on(day)
            mean, sd = self._popularity_moments(day, scores)
            if sd > 1e-12:
                w_pop = self.popularity_weight(n_items) / sd
                axpy(w_pop, scores, out)
                offset -= w_pop * mean
        covered = self.ease.covered_scores(history) if n_items else None
        if covered is not None:
            fill, spread = _sparse_zscores(covered, self.n_movies)
            offset += fill
            if offset:
                out += offset
            out[self.ease.rows] += spread - fill
        elif offset:
            out += offset
        return out

    def _popularity_moments(self, day: int, scores: npt.NDArray[np.float64]) -> tuple[float, float]:
        """The mean and standard deviation ``zscores`` would take of the day's popularity
        ``scores``, once per day (two numbers a day, where the z-scores were a cached vector
        of every movie, and two more passes and two fresh ones on a miss)."""
        hit = self._moments_cache.get(day)
        if hit is None:
            hit = np.array(mean_sd(scores))
            self._moments_cache.put(day, hit)
        return float(hit[0]), float(hit[1])

    def prepare(self) -> None:
        """Compute what every user's scores share now, not on a first request."""
        if self.als is not None:
            self.als.prepare()
        if self.popularity is not None and self.w_popularity:
            self.popularity.prepare()

    @functools.cached_property
    def _moments_cache(self) -> DayCache:
        return DayCache(2)  # two numbers a day: the cache's day limit binds, not its bytes

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {
            "format": np.str_("blend-1"),
            "weights": np.array([self.w_als, self.w_popularity, self.popularity_n0]),
        }
        arrays.update({f"ease.{k}": v for k, v in self.ease.arrays().items()})
        if self.als is not None:
            arrays.update({f"als.{k}": v for k, v in self.als.arrays().items()})
        if self.popularity is not None:
            arrays.update({f"popularity.{k}": v for k, v in self.popularity.arrays().items()})
        save_arrays(path, arrays)


def _sparse_zscores(
    covered: npt.NDArray[np.float32], n: int
) -> tuple[float, npt.NDArray[np.float64]]:
    """The z-scores of a vector of ``n`` entries holding ``covered`` on some rows and their
    minimum everywhere else (``EaseRetriever.scores``), as (the others' z-score, the covered
    rows' z-scores); (0, zeros) when it is constant, as ``zscores``. Mean and variance are
    summed over the covered values and the fill's count: no pass over the ``n`` entries."""
    c = covered.astype(np.float64)
    fill = float(c.min())
    others = n - c.shape[0]
    mean = (float(c.sum()) + others * fill) / n
    centred = c - mean
    var = (float(np.multiply(centred, centred).sum()) + others * (fill - mean) ** 2) / n
    sd = float(np.sqrt(var))
    if sd <= 1e-12:
        return 0.0, np.zeros_like(c)
    return (fill - mean) / sd, centred / sd


def _part(z: Any, prefix: str) -> dict[str, npt.NDArray[Any]] | None:
    names = [n for n in z.files if n.startswith(prefix + ".")]
    return {n[len(prefix) + 1 :]: z[n] for n in names} if names else None


SavedRetriever = EaseRetriever | BlendRetriever  # what bundles and worlds keep


def load_retriever(path: str | Path) -> SavedRetriever:
    """The retriever saved at ``path``: a blend, or a bare EASE (bundles before the blend);
    mapped from a folder, read from an older .npz (``features.npz.open_arrays``)."""
    with open_arrays(path) as z:
        if "format" not in z.files:
            return EaseRetriever.from_arrays(z)
        fmt = str(z["format"])
        if fmt != "blend-1":
            raise ValueError(f"{path}: unknown retriever format {fmt!r}")
        ease = EaseRetriever.from_arrays(_part(z, "ease"))
        als = _part(z, "als")
        pop = _part(z, "popularity")
        w_als, w_pop, n0 = (float(v) for v in z["weights"])
        return BlendRetriever(
            ease,
            None if als is None else AlsRetriever.from_arrays(als),
            None if pop is None else RecentPopularity.from_arrays(pop),
            w_als,
            w_pop,
            n0,
        )
