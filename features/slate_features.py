"""Slate features: per-candidate signals the agent's action weighs beside the item embedding.

The ranking score is ``base_i + e_i . a_e + f_i . a_f`` (``features.ranking``): ``e_i`` the
movie's embedding, ``f_i`` this module's features of the candidate *for this user now*, and the
action ``a = (a_e, a_f)``. An embedding direction cannot say "better-rated" or "unlike what I
just watched", which are the corrections that pay off over a session (people tire of more of
the same; the retriever, scoring similarity to the history, offers exactly that). So:

- ``quality``: the movie's shrunk mean rating offset (``features.retrieval.ItemBias``, fitted on
  the ratings the ranking may see), standardised over the candidates;
- ``variety``: minus the overlap of the movie's genres with the genres of the user's last
  ``RECENT`` history movies, standardised over the candidates (higher = less of the same).

Both are multiplied by the base's weight, so an action weight of 1 on a feature counts as much
as the retriever. O(candidates) per request: a per-movie vector and a sparse genre product.
Worlds and bundles name the features they were trained with (``slate_features`` setting);
those saved before it have none, and their actions keep the embedding's dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.catalog import Catalog, genre_shares
from features.retrieval import ItemBias, zscores
from features.state import UserHistory

SLATE_FEATURES = ("quality", "variety")  # what new worlds are built with
RECENT = 3  # history movies whose genres "variety" moves away from


@dataclass(frozen=True)
class SlateFeatures:
    """The named features of candidates for one history (module doc)."""

    names: tuple[str, ...]
    quality: npt.NDArray[np.float64]  # per movie row
    genres: npt.NDArray[np.float32]  # movies x genres, dense (few genres: row lookups stay
    # cheap, where sparse fancy indexing cost a third of a simulator step); rows sum to 1 or 0
    weight: float = 1.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.names) - set(SLATE_FEATURES))
        if unknown:
            raise ValueError(
                f"unknown slate features {unknown}; known: {', '.join(SLATE_FEATURES)}"
            )
        if self.quality.shape[0] != self.genres.shape[0]:
            raise ValueError(
                f"quality covers {self.quality.shape[0]} movies, genres {self.genres.shape[0]}"
            )

    @classmethod
    def fit(
        cls,
        catalog: Catalog,
        ratings: pd.DataFrame,
        names: tuple[str, ...] = SLATE_FEATURES,
        weight: float = 1.0,
    ) -> SlateFeatures:
        """Features over ``catalog``'s movies, quality from ``ratings`` (columns movie, rating:
        the ratings the ranking may see, a world's training users or the store's)."""
        share = genre_shares(catalog.genres).astype(np.float32)
        bias = ItemBias.fit(ratings, catalog.n_movies).bias
        return cls(tuple(names), bias, share, weight)

    @property
    def dim(self) -> int:
        return len(self.names)

    def compute(
        self, history: UserHistory, candidates: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """(candidates x dim) feature matrix, in ``names`` order."""
        cols = [self._column(name, history, candidates) for name in self.names]
        if not cols:
            return np.zeros((candidates.shape[0], 0))
        return self.weight * np.column_stack(cols)

    def _column(
        self, name: str, history: UserHistory, candidates: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        if name == "quality":
            return zscores(self.quality[candidates])
        recent = np.asarray(history.items[-RECENT:], dtype=np.int64)
        if recent.shape[0] == 0:
            return np.zeros(candidates.shape[0])
        profile = self.genres[recent].sum(axis=0, dtype=np.float64) / recent.shape[0]
        overlap = self.genres[candidates] @ profile
        return -zscores(overlap)
