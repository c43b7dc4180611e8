"""An implicit-feedback ALS retriever (Hu, Koren and Volinsky, 2008), from the maintained
``implicit`` library: who watched what, factorised; a user's vector is folded in from their
history at scoring time (the ALS least-squares step, as implicit's ``recalculate_user``
solves it), so it serves users the fit never saw.

``fit_als`` is the one place the project fits ALS; the simulator's consumption model
(``env.consumption``) uses it too.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.npz import save_npz
from features.state import UserHistory

log = logging.getLogger(__name__)


def fit_als(
    users: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    shape: tuple[int, int],
    *,
    factors: int = 32,
    regularization: float = 0.05,
    alpha: float = 2.0,
    iterations: int = 15,
    seed: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(user factors, item factors) of implicit's ALS on (user row, item row) consumption
    pairs; a repeated pair counts once, with confidence ``alpha``."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    x = sp.csr_matrix((np.ones(items.shape[0], dtype=np.float32), (users, items)), shape=shape)
    x.data[:] = alpha
    with threadpool_limits(1, "blas"):  # implicit's advice: BLAS threads fight its own
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            iterations=iterations,
            random_state=seed,
            num_threads=1,  # deterministic and polite on two shared cores
            calculate_training_loss=False,
        )
        model.fit(x, show_progress=False)
    return (
        np.asarray(model.user_factors, dtype=np.float32),
        np.asarray(model.item_factors, dtype=np.float32),
    )


@dataclass(frozen=True, eq=False)
class AlsRetriever:
    """Item factors and the settings to fold a history in (module doc)."""

    item_factors: npt.NDArray[np.float32]
    regularization: float = 0.1
    alpha: float = 5.0
    name: str = "als"

    @property
    def n_movies(self) -> int:
        return int(self.item_factors.shape[0])

    @classmethod
    def fit(
        cls,
        ratings: Any,
        n_movies: int,
        *,
        factors: int = 32,
        regularization: float = 0.1,
        alpha: float = 5.0,
        seed: int = 0,
    ) -> AlsRetriever:
        """Fit on a ratings frame with columns user, movie (catalogue row): any rating is a
        consumption, whatever its value."""
        import pandas as pd

        if len(ratings) == 0:
            raise ValueError("ALS needs at least one rating to fit")
        users = pd.factorize(ratings["user"].astype(str))[0].astype(np.int64)
        items = ratings["movie"].to_numpy().astype(np.int64)
        _, item_factors = fit_als(
            users,
            items,
            (int(users.max()) + 1, n_movies),
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            seed=seed,
        )
        log.info("ALS retriever: %d movies, %d factors", n_movies, factors)
        return cls(item_factors, regularization, alpha)

    @functools.cached_property
    def _gram(self) -> npt.NDArray[np.float64]:
        """Y^T Y + regularization I, the part of every fold-in that does not depend on the user."""
        y = self.item_factors.astype(np.float64)
        return y.T @ y + self.regularization * np.eye(y.shape[1])

    def user_vector(self, history: UserHistory) -> npt.NDArray[np.float64]:
        """The user's factors solved from their history against the fixed item factors: the
        least-squares step of implicit ALS for one user, (Y^T C Y + reg I)^-1 Y^T C p with
        confidence ``alpha`` on the history's movies (equal to implicit's
        ``recalculate_user``, tested; solved here with the user-independent Y^T Y cached,
        which the simulator's every step needs fast)."""
        rows = np.unique(np.asarray(history.items, dtype=np.int64))
        y = self.item_factors[rows].astype(np.float64)
        a = self._gram + (self.alpha - 1.0) * (y.T @ y)
        return np.asarray(np.linalg.solve(a, self.alpha * y.sum(axis=0)))

    def scores(self, history: UserHistory) -> npt.NDArray[np.float64]:
        """ALS scores of every movie row (zeros for an empty history)."""
        if not history.items:
            return np.zeros(self.n_movies)
        return np.asarray(self.raw_scores(self.user_vector(history)), dtype=np.float64)

    def raw_scores(self, user: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Every movie row's score for a user vector, as float32 (what ``scores`` widens)."""
        return np.asarray(self.item_factors @ user.astype(np.float32))

    def score_moments(self, user: npt.NDArray[np.float64]) -> tuple[float, float]:
        """(mean, standard deviation) over every movie of the scores ``raw_scores`` gives,
        in closed form: mean = u . mean(Y), variance = u^T Cov(Y) u, with the item factors'
        mean and covariance computed once (``_moments``). No pass over the movies per user
        (two at 500K cost ~4 ms); they differ from the statistics of the float32 scores by
        the scores' own rounding (~1e-7 relative)."""
        mean, cov = self._moments
        u = user.astype(np.float32).astype(np.float64)  # the vector raw_scores multiplies by
        return float(u @ mean), float(np.sqrt(max(float(u @ cov @ u), 0.0)))

    @functools.cached_property
    def _moments(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The item factors' column means and covariance (population, as numpy's std), in
        float64, centred before the product (no cancellation), a block of rows at a time so
        that a 500K-movie table is never copied whole into float64."""
        y = self.item_factors
        n, f = y.shape
        if n == 0:
            return np.zeros(f), np.zeros((f, f))
        step = 65_536
        total = np.zeros(f)
        for lo in range(0, n, step):
            total += y[lo : lo + step].astype(np.float64).sum(axis=0)
        mean = total / n
        cov = np.zeros((f, f))
        for lo in range(0, n, step):
            block = y[lo : lo + step].astype(np.float64) - mean
            cov += block.T @ block
        return mean, cov / n

    def prepare(self) -> None:
        """Compute what every user's scores share (the fold-in's Gram matrix, the factors'
        moments) now, not on a first request."""
        _ = self._gram, self._moments

    def arrays(self) -> dict[str, Any]:
        return {
            "item_factors": self.item_factors,
            "regularization": np.float64(self.regularization),
            "alpha": np.float64(self.alpha),
        }

    @classmethod
    def from_arrays(cls, z: Any) -> AlsRetriever:
        return cls(
            np.asarray(z["item_factors"], dtype=np.float32),
            float(z["regularization"]),
            float(z["alpha"]),
        )

    def save(self, path: str | Path) -> None:
        save_npz(path, **self.arrays())
