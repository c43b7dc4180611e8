"""Item embeddings e_i in R^d: a truncated SVD of a weighted item x (users + content) matrix.

Columns are (1) the training users, each movie's entry being the rating minus that user's mean
rating, and (2) the content vertices linked to movies (genres, people, tags) with the hop
weight of their edge kind divided by sqrt(how many movies they link), so that a shared director
says more than a shared genre and "Drama" does not swamp everything. Each block is scaled to
unit Frobenius norm, then multiplied by its block weight. Rows of U * s are L2-normalised, so
every movie with any signal has a unit vector. Two prior columns follow (log popularity and
shrunk mean rating among the training ratings, standardised into [-1, 1] and scaled by
``prior_weight``), so an action can also ask for widely seen or well liked movies.

Only ratings passed in (the training users') are used: the agent never sees the simulator's
world-model factors, nor test users' ratings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from scipy.stats import rankdata

from features.catalog import Catalog
from features.npz import open_arrays, save_arrays

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemEmbeddings:
    """Unit-norm item vectors, row i for catalog movie row i (``movie_keys`` says which)."""

    vectors: npt.NDArray[np.float32]  # (n_movies, dim)
    movie_keys: npt.NDArray[np.str_]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def check_catalog(self, catalog: Catalog) -> None:
        """ValueError unless these embeddings were made for exactly this catalog's movies."""
        if self.movie_keys.shape != catalog.movie_keys.shape or not np.array_equal(
            self.movie_keys, catalog.movie_keys
        ):
            raise ValueError(
                f"embeddings cover {self.movie_keys.shape[0]} movies that do not match the "
                f"catalog's {catalog.n_movies}; rebuild the embeddings for this catalog"
            )

    @classmethod
    def fit(
        cls,
        catalog: Catalog,
        ratings: pd.DataFrame | None = None,
        *,
        dim: int = 32,
        rating_weight: float = 1.0,
        content_weight: float = 0.5,
        prior_weight: float = 0.5,
        seed: int = 0,
    ) -> ItemEmbeddings:
        """Fit on ``ratings`` (catalog.ratings-shaped: user, movie row, rating; default all
        of the catalog's ratings: pass only the training users' to keep test users unseen)."""
        n_prior = len(PRIOR_COLUMNS) if prior_weight > 0 else 0
        if dim <= n_prior:
            raise ValueError(f"embedding dim must exceed the {n_prior} prior columns, got {dim}")
        r = catalog.ratings if ratings is None else ratings
        n = catalog.n_movies
        total_dim, dim = dim, dim - n_prior
        blocks: list[sp.csr_matrix] = []
        if len(r) and rating_weight > 0:
            users, ucode = np.unique(r["user"].to_numpy().astype(str), return_inverse=True)
            vals = r["rating"].to_numpy(dtype=np.float64)
            means = np.bincount(ucode, weights=vals) / np.maximum(np.bincount(ucode), 1)
            centred = vals - means[ucode]
            m = sp.csr_matrix((centred, (r["movie"].to_numpy(), ucode)), shape=(n, users.shape[0]))
            blocks.append(_unit(m) * rating_weight)
        if catalog.hop.bt.shape[0] and content_weight > 0:
            b = catalog.hop.bw.tocsc()  # weight w per column, B*w
            degree = np.diff(b.indptr).astype(np.float64)
            scale = 1.0 / np.sqrt(np.maximum(degree, 1.0))
            blocks.append(_unit(sp.csr_matrix(b @ sp.diags(scale))) * content_weight)
        if not blocks:
            raise ValueError("nothing to embed: no ratings and no content edges")
        x = sp.csr_matrix(sp.hstack(blocks))
        k = min(dim, min(x.shape) - 1)
        if k < dim:
            log.warning("embedding dim %d reduced to %d by the matrix shape %s", dim, k, x.shape)
        rng = np.random.default_rng(seed)
        u, s, _ = svds(x, k=k, v0=rng.standard_normal(min(x.shape)), solver="arpack")
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
        # Fix each component's sign (SVD leaves it free) so fits are reproducible.
        flip = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(k)])
        vec = u * s * np.where(flip == 0, 1.0, flip)
        if k < dim:
            vec = np.hstack([vec, np.zeros((n, dim - k))])
        norms = np.linalg.norm(vec, axis=1, keepdims=True)
        vec = np.divide(vec, norms, out=np.zeros_like(vec), where=norms > 1e-12)
        if n_prior:
            vec = np.hstack([vec, prior_weight * _priors(r, n)])
        log.info("embeddings: %d movies x %d dims from a %s matrix", n, total_dim, x.shape)
        return cls(vectors=vec.astype(np.float32), movie_keys=catalog.movie_keys.copy())

    def save(self, path: str | Path) -> Path:
        """Write a folder of .npy files, complete or not at all (``features.npz.save_arrays``:
        ``x.npz`` saves the folder ``x``); returns the folder."""
        return save_arrays(path, {"vectors": self.vectors, "movie_keys": self.movie_keys})

    @classmethod
    def load(cls, path: str | Path) -> ItemEmbeddings:
        """The embeddings saved at ``path``: mapped from a folder, read from an older .npz."""
        with open_arrays(path) as z:
            vectors, keys = z["vectors"], z["movie_keys"]
        if vectors.ndim != 2 or vectors.shape[0] != keys.shape[0]:
            raise ValueError(
                f"{path}: vectors {vectors.shape} do not match {keys.shape[0]} movie keys"
            )
        return cls(vectors=np.asarray(vectors, dtype=np.float32), movie_keys=keys)


PRIOR_COLUMNS = ("log_popularity", "mean_rating")
_PRIOR_SHRINK = 10.0  # pseudo-ratings at the global mean that a movie's mean is shrunk with


def _priors(r: pd.DataFrame, n: int) -> npt.NDArray[np.float64]:
    """Two item priors from the (training) ratings, popularity and the shrunk mean rating,
    each as its percentile rank mapped to [-1, 1] (ranks keep the order among the most popular
    movies, where clipped z-scores would tie). Without them an action could not ask for
    "well liked" or "widely seen", which the centred ratings remove."""
    movies = r["movie"].to_numpy()
    vals = r["rating"].to_numpy(dtype=np.float64)
    count = np.bincount(movies, minlength=n).astype(np.float64)
    mean = float(vals.mean()) if vals.size else 0.0
    total = np.bincount(movies, weights=vals - mean, minlength=n)
    cols = [count, total / (count + _PRIOR_SHRINK)]
    out = np.empty((n, len(cols)))
    for j, c in enumerate(cols):
        ranks = rankdata(c, method="average")
        out[:, j] = 2.0 * (ranks - 1.0) / max(n - 1, 1) - 1.0
    return out


def _unit(m: sp.csr_matrix) -> sp.csr_matrix:
    norm = float(np.sqrt(m.multiply(m).sum()))
    return sp.csr_matrix(m / norm) if norm > 0 else m
