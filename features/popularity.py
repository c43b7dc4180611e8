"""The two popularity definitions, each named for what it counts.

- ``rating_counts``: how many users rated a movie at all (the Catalog's ``popularity``: the
  simulator's and the candidate generator's popular fallbacks, the popularity baselines);
- ``liked_counts``: how many users rated it ``POSITIVE_RATING`` or more (the service's
  cold-start recommender: popular *and* liked, so a much-rated flop does not lead the slate).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.graph.schema import POSITIVE_RATING


def rating_counts(movie_rows: npt.ArrayLike, n_movies: int) -> npt.NDArray[np.int64]:
    """Per movie row, the number of ratings it received (``movie_rows``: one entry each)."""
    rows = np.asarray(movie_rows, dtype=np.int64)
    return np.bincount(rows, minlength=n_movies).astype(np.int64)


def liked_counts(rated: pd.DataFrame, min_rating: float = POSITIVE_RATING) -> pd.Series:
    """Per movie key (``dst`` of a ``rated`` edge frame), the number of ratings of at least
    ``min_rating``; movies without one are absent."""
    liked = rated[rated["rating"] >= min_rating]
    return liked.groupby(liked["dst"].astype(str)).size()
