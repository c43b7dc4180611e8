"""The simulated user: true preferences from the world model, boredom per genre, leaving.

Boredom b_g in [0, 1] per genre. After each slate it first recovers (b <- b * recovery), then
grows by ``shown`` times the share of slate movies in each genre and by ``watched`` for each
genre of the chosen movie. A movie's true utility is its predicted rating minus
``boredom_weight`` times the mean boredom over its genres. The defaults are priors (a user
shown the same kind of movie again and again likes it less); a calibrated world replaces the
weight with the one fitted on real ratings (``env.calibration``: 0 on ml-latest-small, whose
ratings do not fall with repetition), and its choice model weighs boredom as fitted on real
choices (negative there: recent genres attract).

The user leaves (the episode terminates) with probability ``leave_base``, plus
``leave_no_choice`` after a slate they ignored, plus ``leave_boredom`` times their mean boredom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.state import UserHistory


@dataclass(frozen=True)
class UserModelConfig:
    """Defaults give sessions of a few dozen steps and boredom that bites in ~5 repeats."""

    boredom_shown: float = 0.05
    boredom_watched: float = 0.25
    boredom_recovery: float = 0.9
    boredom_weight: float = 2.0
    leave_base: float = 0.01
    leave_no_choice: float = 0.05
    leave_boredom: float = 0.1
    rating_noise: float = 0.5

    def __post_init__(self) -> None:
        for name in ("boredom_shown", "boredom_watched", "boredom_weight", "rating_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"UserModelConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("boredom_recovery", "leave_base", "leave_no_choice", "leave_boredom"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"UserModelConfig.{name} must be in [0, 1], got {getattr(self, name)}"
                )


class SimulatedUser:
    """One user's hidden state during an episode."""

    def __init__(
        self,
        key: str,
        predicted: npt.NDArray[np.float64],
        genres: npt.NDArray[np.float64],
        history: UserHistory,
        config: UserModelConfig,
        genre_share: npt.NDArray[np.float64] | None = None,
        propensity: npt.NDArray[np.float64] | None = None,
    ):
        self.key = key
        self.predicted = predicted  # world-model rating of every movie row
        # consumption propensity of every movie row (env.consumption), None in worlds without
        self.propensity = propensity
        self.genres = genres  # dense movies x genres 0/1
        # Each genre row divided by the movie's genre count; pass it in to share it.
        self._genre_share = (
            genre_share
            if genre_share is not None
            else genres / np.maximum(genres.sum(axis=1, keepdims=True), 1.0)
        )
        self.history = history
        self.config = config
        self.boredom = np.zeros(genres.shape[1], dtype=np.float64)

    def boredom_of(self, movies: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Mean boredom over each movie's genres, in [0, 1]."""
        return np.asarray(self._genre_share[movies] @ self.boredom)

    def utility(self, movies: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """True utility (rating points) of movie rows: prediction minus boredom penalty."""
        penalty = self.boredom_of(movies)
        return np.asarray(self.predicted[movies] - self.config.boredom_weight * penalty)

    def propensity_of(self, movies: npt.NDArray[np.int64]) -> npt.NDArray[np.float64] | None:
        """Consumption propensity of movie rows, None when the world has no such model."""
        return None if self.propensity is None else np.asarray(self.propensity[movies])

    def observe(self, slate: npt.NDArray[np.int64], chosen: int | None) -> None:
        """Update boredom after seeing ``slate`` and picking ``chosen`` (a movie row or None)."""
        c = self.config
        b = self.boredom * c.boredom_recovery
        if slate.shape[0]:
            b += c.boredom_shown * self.genres[slate].mean(axis=0)
        if chosen is not None:
            b += c.boredom_watched * self.genres[chosen]
        self.boredom = np.clip(b, 0.0, 1.0)

    def leave_probability(self, chose: bool) -> float:
        c = self.config
        p = c.leave_base + (0.0 if chose else c.leave_no_choice)
        p += c.leave_boredom * float(self.boredom.mean()) if self.boredom.size else 0.0
        return float(min(p, 1.0))


def replay_boredom(
    users: npt.ArrayLike,
    genres: npt.NDArray[np.float64],
    config: UserModelConfig,
) -> npt.NDArray[np.float64]:
    """Each event's boredom state *before* it, replaying real watch sequences through
    ``SimulatedUser.observe``'s dynamics (recovery, then ``boredom_watched`` per genre of the
    movie watched, clipped to [0, 1]); real logs record no slates, so nothing is "shown".

    ``users`` holds each event's user, events grouped by user and in time order; ``genres``
    the (events x genres) 0/1 genres of each event's movie. Used to fit how much boredom
    matters to real people (``env.calibration``)."""
    u = np.asarray(users)
    out = np.zeros_like(genres, dtype=np.float64)
    b = np.zeros(genres.shape[1], dtype=np.float64)
    for i in range(u.shape[0]):
        if i == 0 or u[i] != u[i - 1]:
            b = np.zeros(genres.shape[1], dtype=np.float64)
        out[i] = b
        b = np.clip(b * config.boredom_recovery + config.boredom_watched * genres[i], 0.0, 1.0)
    return out
