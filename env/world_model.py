"""The simulator's world model: biased matrix factorisation, fitted by vectorised ALS.

prediction(u, i) = mu + b_u + b_i + p_u . q_i, clipped to [0.5, 5]. Each ALS half-step solves
every user's (or item's) ridge system at once: the Gram matrices are one sparse x dense product
of the rating indicator with the row-wise outer products of the other side's factors (with a
constant 1 column appended, so the bias is solved jointly), then one batched ``np.linalg.solve``.
Regularisation is weighted by the number of ratings (ALS-WR, Zhou et al. 2008).

The simulator fits this on ALL ratings (it plays the "true" users); the agent's item embeddings
come from the training users only and never see these factors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

log = logging.getLogger(__name__)

RATING_MIN, RATING_MAX = 0.5, 5.0


@dataclass(frozen=True)
class WorldModel:
    """Biased MF over users (``user_keys`` order) and catalog movie rows 0..n_items-1."""

    mu: float
    user_keys: npt.NDArray[np.str_]
    user_bias: npt.NDArray[np.float64]
    item_bias: npt.NDArray[np.float64]
    user_factors: npt.NDArray[np.float64]
    item_factors: npt.NDArray[np.float64]

    @property
    def n_users(self) -> int:
        return int(self.user_keys.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_bias.shape[0])

    @property
    def factors(self) -> int:
        return int(self.user_factors.shape[1])

    def user_index(self, key: str) -> int:
        """Row of a user key; ValueError if the model has never seen that user."""
        pos = int(np.searchsorted(self.user_keys, key))
        if pos >= self.n_users or self.user_keys[pos] != key:
            raise ValueError(f"unknown user {key!r}: the world model has no such user")
        return pos

    def predict(self, users: npt.ArrayLike, items: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predicted ratings for aligned arrays of user rows and item rows."""
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        raw = (
            self.mu
            + self.user_bias[u]
            + self.item_bias[i]
            + np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
        )
        return np.asarray(np.clip(raw, RATING_MIN, RATING_MAX))

    def predict_user(self, user: int) -> npt.NDArray[np.float64]:
        """Predicted ratings of one user row for every item, unclipped-then-clipped."""
        raw = (
            self.mu
            + self.user_bias[user]
            + self.item_bias
            + self.item_factors @ self.user_factors[user]
        )
        return np.asarray(np.clip(raw, RATING_MIN, RATING_MAX))

    @classmethod
    def fit(
        cls,
        user_keys: npt.ArrayLike,
        items: npt.ArrayLike,
        ratings: npt.ArrayLike,
        n_items: int,
        *,
        factors: int = 16,
        reg: float = 0.15,
        iterations: int = 12,
        seed: int = 0,
    ) -> WorldModel:
        """Fit on aligned arrays: user key, item row and rating per observed rating."""
        keys = np.asarray(user_keys).astype(str)
        item_rows = np.asarray(items, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        if not (keys.shape == item_rows.shape == r.shape):
            raise ValueError(
                f"users, items and ratings must align: {keys.shape}, {item_rows.shape}, {r.shape}"
            )
        if factors < 0 or reg <= 0 or iterations <= 0:
            raise ValueError(
                f"need factors >= 0, reg > 0, iterations > 0; got {factors}, {reg}, {iterations}"
            )
        if item_rows.size and (item_rows.min() < 0 or item_rows.max() >= n_items):
            raise ValueError(f"item rows must lie in [0, {n_items})")
        ukeys, urows = np.unique(keys, return_inverse=True)
        n_users = ukeys.shape[0]
        mu = float(r.mean()) if r.size else 3.0
        ind = sp.csr_matrix((np.ones_like(r), (urows, item_rows)), shape=(n_users, n_items))
        ind_t = ind.T.tocsr()
        n_u = np.asarray(ind.sum(axis=1)).reshape(-1)
        n_i = np.asarray(ind.sum(axis=0)).reshape(-1)
        rng = np.random.default_rng(seed)
        p = rng.normal(0.0, 0.1, (n_users, factors))
        q = rng.normal(0.0, 0.1, (n_items, factors))
        bu = np.zeros(n_users)
        bi = np.zeros(n_items)
        for _ in range(iterations):
            p, bu = _half_step(ind, urows, item_rows, r - mu - bi[item_rows], q, n_u, reg)
            q, bi = _half_step(ind_t, item_rows, urows, r - mu - bu[urows], p, n_i, reg)
        model = cls(
            mu=mu, user_keys=ukeys, user_bias=bu, item_bias=bi, user_factors=p, item_factors=q
        )
        if r.size:
            train = rmse(model.predict(urows, item_rows), r)
            log.info(
                "world model: %d users, %d items, k=%d, train RMSE %.4f",
                n_users,
                n_items,
                factors,
                train,
            )
        return model

    def save(self, path: str | Path) -> None:
        """Write one .npz through a temporary file renamed into place."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            mu=np.asarray(self.mu),
            user_keys=self.user_keys,
            user_bias=self.user_bias,
            item_bias=self.item_bias,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> WorldModel:
        with np.load(Path(path), allow_pickle=False) as z:
            model = cls(
                mu=float(z["mu"]),
                user_keys=z["user_keys"],
                user_bias=z["user_bias"],
                item_bias=z["item_bias"],
                user_factors=z["user_factors"],
                item_factors=z["item_factors"],
            )
        if (
            model.user_factors.shape[0] != model.n_users
            or model.item_factors.shape[0] != model.n_items
        ):
            raise ValueError(f"{path}: factor shapes do not match the bias vectors")
        return model


def _half_step(
    ind: sp.csr_matrix,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    target: npt.NDArray[np.float64],
    other: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    reg: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Solve every row's ridge system for [factors, bias] given the other side's factors."""
    n_rows, k1 = ind.shape[0], other.shape[1] + 1
    x = np.hstack([other, np.ones((other.shape[0], 1))])
    outer = np.einsum("ni,nj->nij", x, x).reshape(x.shape[0], k1 * k1)
    gram = np.asarray(ind @ outer).reshape(n_rows, k1, k1)
    gram += (reg * np.maximum(counts, 1.0))[:, None, None] * np.eye(k1)
    resid = sp.csr_matrix((target, (rows, cols)), shape=ind.shape)
    rhs = np.asarray(resid @ x)
    theta = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    return theta[:, :-1], theta[:, -1]


def rmse(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def fit_biases(
    users: npt.ArrayLike,
    items: npt.ArrayLike,
    ratings: npt.ArrayLike,
    n_items: int,
    *,
    reg: float = 0.15,
) -> WorldModel:
    """The user + item bias baseline (no factors), by the same ALS."""
    return WorldModel.fit(users, items, ratings, n_items, factors=0, reg=reg, iterations=10)
