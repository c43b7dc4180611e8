"""Retrievers: per-user scores over every movie from a user's history, cheap enough to serve.

A retriever gives the ranking its base score (``features.ranking.rank``: score_i = base_i +
e_i . a, so a zero action reproduces the retriever) and the candidate generator its top N.

- ``EaseRetriever``: EASE (Steck, 2019), B = I - P diag(1/diag P), P = (X^T X + l2 I)^-1, over
  the movies with at least ``min_count`` interactions (at most ``max_items``, the most
  interacted), so that B stays a dense (m x m) float32 table of a few tens of MB even on a
  100K-movie graph. A user's row x weights their history by recency (half weight every
  ``half_life`` interactions back): people's next choices follow what they watched lately, and
  on a time split that is worth more than any setting of l2. Scoring costs O(|history| x m).
- ``RP3Beta``: degree-normalised random walks (Paudel et al., 2017) over the knowledge graph:
  movie -> (user or content vertex) -> movie, each transition probability raised to ``alpha``,
  the arrival divided by the movie's popularity to the power ``beta``, so hub-linked obscure
  movies and blockbusters alike stop winning by degree alone. Two sparse products per user.

Both are fitted on whatever ratings they are given (the training part only, for the agent)
and saved as plain arrays (no pickles).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from features.catalog import Catalog
from features.npz import RowReader, open_arrays, save_arrays
from features.state import UserHistory

log = logging.getLogger(__name__)

Scores = npt.NDArray[np.float64]


class Retriever(Protocol):
    """Scores every movie row for one user's history (higher is better; seen not removed)."""

    @property
    def name(self) -> str: ...

    def scores(self, history: UserHistory) -> Scores: ...


def recency_weights(n: int, half_life: float | None) -> npt.NDArray[np.float64]:
    """Weights of a history of n interactions, oldest first: 1 for the latest, halving every
    ``half_life`` interactions back; all ones when ``half_life`` is None or not positive."""
    if half_life is None or half_life <= 0:
        return np.ones(n)
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.asarray(0.5 ** (age / half_life))


def _history_rows(history: UserHistory) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(unique rated rows, recency position of their latest interaction) of a history."""
    items = np.asarray(history.items, dtype=np.int64)
    if items.shape[0] == 0:
        return items, np.zeros(0)
    # the latest interaction with each movie counts (a re-rating moves it to the front)
    rev = items[::-1]
    uniq, first = np.unique(rev, return_index=True)
    return uniq, (items.shape[0] - 1 - first).astype(np.float64)


@dataclass(frozen=True, eq=False)
class EaseRetriever:
    """EASE over the catalogue's most interacted movies (module doc)."""

    rows: npt.NDArray[np.int64]  # catalogue rows covered, ascending
    weights: npt.NDArray[np.float32]  # (m, m) item-item weights, zero diagonal
    n_movies: int
    half_life: float | None = 5.0
    name: str = "ease"

    @classmethod
    def fit(
        cls,
        ratings: pd.DataFrame,
        n_movies: int,
        *,
        l2: float = 500.0,
        min_count: int = 3,
        max_items: int = 6000,
        half_life: float | None = 5.0,
    ) -> EaseRetriever:
        """Fit on a ratings frame with columns user, movie (catalogue row); every rating is an
        interaction, whatever its value (people watch what they then rate low)."""
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        if len(ratings) == 0:
            raise ValueError("EASE needs at least one rating to fit")
        movies = ratings["movie"].to_numpy().astype(np.int64)
        counts = np.bincount(movies, minlength=n_movies)
        eligible = np.flatnonzero(counts >= min_count)
        if eligible.shape[0] > max_items:
            top = np.lexsort((eligible, -counts[eligible]))[:max_items]
            eligible = np.sort(eligible[top])
        if eligible.shape[0] == 0:
            eligible = np.flatnonzero(counts > 0)
        col = np.full(n_movies, -1, dtype=np.int64)
        col[eligible] = np.arange(eligible.shape[0])
        users = pd.factorize(ratings["user"].astype(str))[0]
        keep = col[movies] >= 0
        x = sp.csr_matrix(
            (np.ones(int(keep.sum())), (users[keep], col[movies[keep]])),
            shape=(int(users.max()) + 1, eligible.shape[0]),
        )
        x.data[:] = 1.0  # duplicates (re-ratings) count once
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        log.info("EASE over %d of %d movies (l2 %g)", eligible.shape[0], n_movies, l2)
        return cls(eligible.astype(np.int64), b.astype(np.float32), n_movies, half_life)

    def scores(self, history: UserHistory) -> Scores:
        """EASE scores of every movie row; movies outside the covered set score the minimum
        of the covered ones (never above a covered movie)."""
        out = np.zeros(self.n_movies)
        covered = self.covered_scores(history)
        if covered is not None:
            out[:] = float(covered.min())
            out[self.rows] = covered
        return out

    def covered_scores(self, history: UserHistory) -> npt.NDArray[np.float32] | None:
        """The scores of the covered rows only (``rows``' order), None when the history
        holds no covered movie (then every movie scores 0): what ``scores`` spreads over the
        catalogue, for callers that need not write every movie (features.blend)."""
        rows, pos = _history_rows(history)
        col = self.column[rows]
        ok = col >= 0
        if not np.any(ok):
            return None
        w = recency_weights(len(history.items), self.half_life)[pos[ok].astype(np.int64)]
        return np.asarray(w.astype(np.float32) @ self._weight_rows.take(col[ok]))

    @functools.cached_property
    def _weight_rows(self) -> RowReader:
        """The rows of ``weights`` a history needs, read from the file when mapped (a few
        users' rows otherwise make the whole mapped matrix resident: features.npz.RowReader)."""
        return RowReader(self.weights, 0)

    @functools.cached_property
    def column(self) -> npt.NDArray[np.int64]:
        """Column of each movie row in ``weights``, -1 where not covered."""
        col = np.full(self.n_movies, -1, dtype=np.int64)
        col[self.rows] = np.arange(self.rows.shape[0])
        return col

    def arrays(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "weights": self.weights,
            "n_movies": np.int64(self.n_movies),
            "half_life": np.float64(-1.0 if self.half_life is None else self.half_life),
        }

    @classmethod
    def from_arrays(cls, z: Any) -> EaseRetriever:
        half = float(z["half_life"])
        return cls(
            rows=np.asarray(z["rows"]).astype(np.int64),
            weights=np.asarray(z["weights"]),
            n_movies=int(z["n_movies"]),
            half_life=None if half <= 0 else half,
        )

    def save(self, path: str | Path) -> Path:
        """A folder of .npy files (``features.npz.save_arrays``); returns it."""
        return save_arrays(path, self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> EaseRetriever:
        """Mapped from a folder, read from an older .npz (``features.npz.open_arrays``)."""
        with open_arrays(path) as z:
            return cls.from_arrays(z)


@dataclass(frozen=True)
class RP3Beta:
    """Degree-normalised random walks over ratings and content edges (module doc)."""

    to_middle: sp.csr_matrix  # movies x (users + content): P(movie -> vertex) ** alpha
    to_movie: sp.csr_matrix  # (users + content) x movies: P(vertex -> movie) ** alpha
    penalty: npt.NDArray[np.float64]  # popularity ** -beta per movie
    name: str = "rp3beta"

    @classmethod
    def fit(
        cls,
        catalog: Catalog,
        ratings: pd.DataFrame | None = None,
        *,
        alpha: float = 1.0,
        beta: float = 0.5,
        content_weight: float = 0.3,
    ) -> RP3Beta:
        """Walks over ``ratings`` (default: the catalogue's) and the catalogue's content
        incidence; ``content_weight`` scales content vertices against users."""
        r = catalog.ratings if ratings is None else ratings
        n = catalog.n_movies
        users = pd.factorize(r["user"].astype(str))[0]
        n_users = int(users.max()) + 1 if len(users) else 0
        interact = sp.csr_matrix(
            (np.ones(len(r)), (r["movie"].to_numpy().astype(np.int64), users)), shape=(n, n_users)
        )
        interact.data[:] = 1.0
        content = catalog.hop.bw.tocsr().astype(np.float64)
        content.data[:] = content_weight  # presence, scaled: weight per link, not edge weight
        a = sp.hstack([interact, content], format="csr")
        to_middle = _row_normalised(a, alpha)
        to_movie = _row_normalised(a.T.tocsr(), alpha)
        pop = np.asarray(interact.sum(axis=1)).ravel() + 1.0
        return cls(to_middle, to_movie, pop**-beta)

    def scores(self, history: UserHistory) -> Scores:
        rows, _ = _history_rows(history)
        if rows.shape[0] == 0:
            return np.zeros(self.penalty.shape[0])
        start = np.asarray(self.to_middle[rows].sum(axis=0)).ravel() / rows.shape[0]
        return np.asarray(self.to_movie.T @ start) * self.penalty


@dataclass(frozen=True)
class ItemBias:
    """Each movie's shrunk mean rating offset (the same for every user): what a rating
    predictor without personal factors would rank by."""

    bias: npt.NDArray[np.float64]
    name: str = "item-bias"

    @classmethod
    def fit(cls, ratings: pd.DataFrame, n_movies: int, shrink: float = 10.0) -> ItemBias:
        movies = ratings["movie"].to_numpy().astype(np.int64)
        values = ratings["rating"].to_numpy().astype(np.float64)
        mu = float(values.mean()) if values.size else 0.0
        count = np.bincount(movies, minlength=n_movies)
        total = np.bincount(movies, weights=values - mu, minlength=n_movies)
        return cls(total / (count + shrink))

    def scores(self, history: UserHistory) -> Scores:
        return self.bias.copy()


def _row_normalised(m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Rows scaled to sum 1, then every entry raised to ``alpha``."""
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out = sp.diags(inv) @ m
    out = out.tocsr()
    if alpha != 1.0:
        out.data = out.data**alpha
    return out


def zscores(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Standardised over the given entries (mean 0, sd 1; all zeros when constant).

    Bit for bit ``(v - v.mean()) / v.std()``, in five passes over ``v`` instead of eight:
    numpy's std centres ``v`` itself, so the centred copy is made once and divided in place
    (at 500K movies each pass is ~1 ms of a first request)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] == 0:
        return v
    out = v - v.mean()
    # numpy's _var: the sum of the squared centred values over n, then its square root
    sd = float(np.sqrt(np.multiply(out, out).sum() / v.shape[0]))
    if sd > 1e-12:
        out /= sd
        return out
    return np.zeros_like(v)


def mean_sd(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """The mean and standard deviation ``zscores`` standardises by (the sum of the centred
    squares over n), centred a block at a time: no copy of the whole vector, for callers that
    scale by them instead of keeping the z-scores (features.blend)."""
    n = values.shape[0]
    if n == 0:
        return 0.0, 0.0
    mean = float(values.mean())
    squares = 0.0
    for lo in range(0, n, _MOMENT_BLOCK):
        block = values[lo : lo + _MOMENT_BLOCK] - mean
        squares += float(np.dot(block, block))
    return mean, float(np.sqrt(squares / n))


_MOMENT_BLOCK = 65_536  # 512 KB of float64: a block's temporary stays in the cache
