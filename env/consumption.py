"""The simulated users' consumption propensity: what they know of and what people like them watch.

People choose among what they have heard of, and they hear of what people like them watch; a
predicted rating says nothing of that. This model is an implicit-feedback ALS (Hu, Koren and
Volinsky, 2008) from the maintained ``implicit`` library (``features.als.fit_als``), fitted on
who rated what (any rating counts as a consumption), one factor vector per user and per
movie. The movie's rank in the user's ALS order, as -log2(1 + rank), is the propensity term of
the choice model's utility (``env.choice``).

Like the world model, the simulator fits it on all ratings: it plays the true users, and the
agent never sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from features.als import fit_als
from features.npz import save_npz

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumptionModel:
    """ALS factors over users (``user_keys`` order) and movie rows; scores standardised."""

    user_keys: npt.NDArray[np.str_]
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    scale: float  # sd of raw scores over a sample of (user, movie) pairs

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    def user_index(self, key: str) -> int:
        pos = int(np.searchsorted(self.user_keys, key))
        if pos >= self.user_keys.shape[0] or self.user_keys[pos] != key:
            raise ValueError(f"unknown user {key!r}: the consumption model has no such user")
        return pos

    def scores_user(self, user: int) -> npt.NDArray[np.float64]:
        """Raw ALS scores of every movie row for one user row, divided by their global sd."""
        raw = self.item_factors @ self.user_factors[user]
        return np.asarray(raw, dtype=np.float64) / self.scale

    def predict_user(self, user: int) -> npt.NDArray[np.float64]:
        """Propensity of every movie row for one user row: -log2(1 + rank) of the movie in the
        user's ALS order (0 for their first). A rank, not the raw score: raw ALS scores grow
        with popularity so steeply that a linear logit in them is swamped by blockbusters the
        user never chose (held-out log-likelihood -5.6 against -3.7 for the rank; README)."""
        raw = self.scores_user(user)
        order = np.argsort(-raw, kind="stable")
        rank = np.empty(raw.shape[0])
        rank[order] = np.arange(raw.shape[0], dtype=np.float64)
        return np.asarray(-np.log2(1.0 + rank))

    @classmethod
    def fit(
        cls,
        user_keys: npt.ArrayLike,
        items: npt.ArrayLike,
        n_items: int,
        *,
        factors: int = 32,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> ConsumptionModel:
        """Fit on aligned arrays of user key and movie row per consumption (rating)."""
        keys = np.asarray(user_keys).astype(str)
        rows = np.asarray(items, dtype=np.int64)
        if keys.shape != rows.shape:
            raise ValueError(f"users and items must align: {keys.shape} vs {rows.shape}")
        if rows.size == 0:
            raise ValueError("the consumption model needs at least one rating")
        if rows.min() < 0 or rows.max() >= n_items:
            raise ValueError(f"item rows must lie in [0, {n_items})")
        ukeys, urows = np.unique(keys, return_inverse=True)
        uf, itf = fit_als(
            urows.astype(np.int64),
            rows,
            (ukeys.shape[0], n_items),
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            seed=seed,
        )
        rng = np.random.default_rng(seed)
        su = rng.integers(uf.shape[0], size=20_000)
        si = rng.integers(itf.shape[0], size=20_000)
        scale = float(np.std(np.einsum("ij,ij->i", uf[su], itf[si]))) or 1.0
        log.info("consumption model: %d users, %d movies, %d factors", len(ukeys), n_items, factors)
        return cls(ukeys, uf, itf, scale)

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            user_keys=self.user_keys,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            scale=np.float64(self.scale),
        )

    @classmethod
    def load(cls, path: str | Path) -> ConsumptionModel:
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(z["user_keys"], z["user_factors"], z["item_factors"], float(z["scale"]))
