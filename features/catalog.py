"""Catalog: a read-only, in-memory snapshot of a graph store, built once, as numpy arrays.

Hot paths (the simulator's step, the service's ranking) must not make a store round-trip per
call, so everything they need is copied out of the store here: movie keys <-> row indices,
titles, years, genres (a CSR incidence), popularity, the ratings, and the movie-to-movie hop
operator of ``features.graph.store`` (features.graph.hop.HopGraph, built here from the
store's edge frames: B is the binary movie x (kind, vertex) incidence of the content edges with
per-column edge-kind weights, S the weighted similar_to counts).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from features.graph.batch import GraphBatch
from features.graph.hop import HopGraph, hop_graph
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    EdgeKind,
    VertexKind,
    slug,
)
from features.graph.store import GraphStore
from features.npz import ArrayFolder, open_arrays, save_arrays
from features.popularity import rating_counts

log = logging.getLogger(__name__)

_NO_GENRE = "(no genres listed)"


def genre_shares(genres: sp.spmatrix | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Dense movies x genres, each 0/1 row divided by the movie's number of genres (rows of
    movies without genres stay 0): how much of a movie each genre is."""
    dense = sp.csr_matrix(genres).toarray() if sp.issparse(genres) else genres
    g = np.asarray(dense, dtype=np.float64)
    return np.asarray(g / np.maximum(g.sum(axis=1, keepdims=True), 1.0))


def _csr_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def _csr_load(prefix: str, z: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in z[f"{prefix}_shape"])
    return sp.csr_matrix(
        (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]), shape=shape
    )


_RATING_COLUMNS = {
    "user": "r_user",
    "movie": "r_movie",
    "rating": "r_rating",
    "timestamp": "r_timestamp",
}


class SavedRatings:
    """A saved catalogue's ratings, read only when asked for, and then only the columns asked
    for: the service ranks without them (at most the movie and rating columns, for the
    ``quality`` slate feature), while the user keys alone would cost a worker hundreds of MB
    at 4M ratings."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._arrays = arrays

    def frame(self, columns: tuple[str, ...] = tuple(_RATING_COLUMNS)) -> pd.DataFrame:
        """The ratings frame with ``columns`` (catalog.ratings' layout)."""
        out: dict[str, np.ndarray] = {}
        for c in columns:
            values = self._arrays[_RATING_COLUMNS[c]]
            out[c] = values.astype(object) if c == "user" else np.asarray(values)
        return pd.DataFrame(out)


@dataclass(frozen=True)
class Catalog:
    """Movies (rows 0..n-1, sorted by key), genres, popularity, ratings and the hop graph.

    ``ratings`` has columns user (str key), movie (row index), rating, timestamp, sorted by
    (user, timestamp, movie). A loaded catalogue reads them on first use (``SavedRatings``):
    the simulator needs them, the service does not.
    """

    movie_keys: npt.NDArray[np.str_]
    titles: npt.NDArray[np.str_]
    years: npt.NDArray[np.int64]
    genre_keys: npt.NDArray[np.str_]
    genre_names: npt.NDArray[np.str_]
    genres: sp.csr_matrix  # movies x genres, 0/1 float32
    popularity: npt.NDArray[np.int64]  # ratings per movie (features.popularity.rating_counts)
    ratings_source: pd.DataFrame | SavedRatings  # ``ratings``, or where to read them
    hop: HopGraph

    @functools.cached_property
    def ratings(self) -> pd.DataFrame:
        """Every rating (class doc), read on first use from a saved catalogue."""
        src = self.ratings_source
        return src if isinstance(src, pd.DataFrame) else src.frame()

    def rating_columns(self, *columns: str) -> pd.DataFrame:
        """The ratings' ``columns`` alone: without reading the others (the user keys) from a
        saved catalogue that has not read them yet."""
        src = self.ratings_source
        if isinstance(src, SavedRatings) and "ratings" not in self.__dict__:
            return src.frame(columns)
        return self.ratings[list(columns)]

    # ---- sizes and lookups -------------------------------------------------------------
    @property
    def n_movies(self) -> int:
        return int(self.movie_keys.shape[0])

    @property
    def n_genres(self) -> int:
        return int(self.genre_keys.shape[0])

    @property
    def users(self) -> npt.NDArray[np.str_]:
        """User keys that have ratings, sorted."""
        return np.asarray(np.unique(self.ratings["user"].to_numpy().astype(str)))

    def index_of(self, keys: str | list[str] | npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Row indices of movie keys; KeyError naming the first unknown key."""
        arr = np.atleast_1d(np.asarray(keys, dtype=str))
        pos = np.searchsorted(self.movie_keys, arr)
        pos = np.clip(pos, 0, max(self.n_movies - 1, 0))
        bad = (self.n_movies == 0) | (self.movie_keys[pos] != arr)
        if np.any(bad):
            raise KeyError(f"no movie with key {str(arr[np.argmax(bad)])!r} in the catalog")
        return pos.astype(np.int64)

    def popular_order(self) -> npt.NDArray[np.int64]:
        """Movie rows by popularity descending, ties by row (key) ascending."""
        return np.lexsort((np.arange(self.n_movies), -self.popularity)).astype(np.int64)

    # ---- building ------------------------------------------------------------------------
    @classmethod
    def from_store(
        cls, store: GraphStore, *, hop_weights: Mapping[EdgeKind, float] | None = None
    ) -> Catalog:
        """Snapshot a store (any GraphStore) into a Catalog."""
        weights = dict(DEFAULT_HOP_WEIGHTS if hop_weights is None else hop_weights)
        edges = {k: store.edge_frame(k) for k in (*CONTENT_EDGES, EdgeKind.SIMILAR_TO)}
        return cls.from_frames(
            movies=store.vertex_frame(VertexKind.MOVIE),
            ratings=store.edge_frame(EdgeKind.RATED),
            edges=edges,
            genre_vertices=store.vertex_frame(VertexKind.GENRE),
            hop_weights=weights,
        )

    @classmethod
    def from_batch(
        cls, batch: GraphBatch, *, hop_weights: Mapping[EdgeKind, float] | None = None
    ) -> Catalog:
        """Snapshot an importer's GraphBatch without a store (same frames a store returns)."""
        b = batch.deduplicated()
        empty = pd.DataFrame({"src": [], "dst": [], "rating": [], "timestamp": []})
        return cls.from_frames(
            movies=b.vertices.get(VertexKind.MOVIE, pd.DataFrame({"key": []})),
            ratings=b.edges.get(EdgeKind.RATED, empty),
            edges={k: v for k, v in b.edges.items() if k is not EdgeKind.RATED},
            genre_vertices=b.vertices.get(VertexKind.GENRE),
            hop_weights=hop_weights,
        )

    @classmethod
    def from_frames(
        cls,
        *,
        movies: pd.DataFrame,
        ratings: pd.DataFrame,
        edges: Mapping[EdgeKind, pd.DataFrame] | None = None,
        genre_vertices: pd.DataFrame | None = None,
        hop_weights: Mapping[EdgeKind, float] | None = None,
    ) -> Catalog:
        """Build from frames shaped like the store's ``vertex_frame``/``edge_frame`` answers.

        Genres come from ``in_genre`` edges when there are any, else from the movies'
        "A|B" ``genres`` column (keys are ``slug(name)``).
        """
        edges = dict(edges or {})
        weights = dict(DEFAULT_HOP_WEIGHTS if hop_weights is None else hop_weights)
        if "key" not in movies.columns:
            raise ValueError("movies frame has no 'key' column")
        mv = movies.assign(key=movies["key"].astype(str)).drop_duplicates("key")
        mv = mv.sort_values("key", kind="stable").reset_index(drop=True)
        keys = mv["key"].to_numpy().astype(str)
        n = keys.shape[0]
        index = pd.Series(np.arange(n, dtype=np.int64), index=keys)
        titles = np.asarray(
            (mv["title"] if "title" in mv else pd.Series([""] * n)).astype(str), dtype=str
        )
        years = (mv["year"] if "year" in mv else pd.Series([0] * n)).fillna(0).astype(np.int64)

        # Genres.
        ge = edges.get(EdgeKind.IN_GENRE)
        if ge is not None and len(ge):
            pairs = pd.DataFrame({"movie": ge["src"].astype(str), "genre": ge["dst"].astype(str)})
            names: dict[str, str] = {}
            if genre_vertices is not None and len(genre_vertices):
                col = "name" if "name" in genre_vertices else "key"
                names = dict(
                    zip(
                        genre_vertices["key"].astype(str),
                        genre_vertices[col].astype(str),
                        strict=True,
                    )
                )
        else:
            rows = []
            names = {}
            gcol = mv["genres"] if "genres" in mv else pd.Series([""] * n)
            for key, gstr in zip(keys, gcol.fillna("").astype(str), strict=True):
                for g in gstr.split("|"):
                    g = g.strip()
                    if g and g != _NO_GENRE:
                        names.setdefault(slug(g), g)
                        rows.append((key, slug(g)))
            pairs = pd.DataFrame(rows, columns=["movie", "genre"])
        pairs = pairs[pairs["movie"].isin(index.index)].drop_duplicates()
        genre_keys = np.asarray(sorted(pairs["genre"].unique()), dtype=str)
        gindex = pd.Series(np.arange(genre_keys.shape[0]), index=genre_keys)
        gmat = sp.csr_matrix(
            (
                np.ones(len(pairs), dtype=np.float32),
                (index[pairs["movie"]].to_numpy(), gindex[pairs["genre"]].to_numpy()),
            ),
            shape=(n, genre_keys.shape[0]),
        )
        genre_names = np.asarray([names.get(g, g) for g in genre_keys], dtype=str)

        # Ratings.
        r = ratings.assign(src=ratings["src"].astype(str), dst=ratings["dst"].astype(str))
        known = r["dst"].isin(index.index)
        if not known.all():
            log.warning("dropping %d ratings of movies not in the catalog", int((~known).sum()))
            r = r[known]
        rt = pd.DataFrame(
            {
                "user": r["src"].to_numpy(),
                "movie": index[r["dst"]].to_numpy(),
                "rating": r["rating"].astype(np.float32).to_numpy(),
                "timestamp": (
                    r["timestamp"].astype(np.int64).to_numpy()
                    if "timestamp" in r
                    else np.zeros(len(r), dtype=np.int64)
                ),
            }
        )
        rt = rt.sort_values(["user", "timestamp", "movie"], kind="stable").reset_index(drop=True)
        popularity = rating_counts(rt["movie"].to_numpy(), n)

        hop = _build_hop(index, edges, weights, n)
        log.info(
            "catalog: %d movies, %d genres, %d ratings, %d hop columns",
            n,
            genre_keys.shape[0],
            len(rt),
            hop.bt.shape[0],
        )
        return cls(
            movie_keys=keys,
            titles=titles,
            years=years.to_numpy().astype(np.int64),
            genre_keys=genre_keys,
            genre_names=genre_names,
            genres=gmat,
            popularity=popularity,
            ratings_source=rt,
            hop=hop,
        )

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a folder of .npy files (no pickles; ``features.npz.save_arrays``: ``x.npz``
        saves the folder ``x``), complete or not at all; returns the folder."""
        ratings = self.ratings
        arrays: dict[str, np.ndarray] = {
            "movie_keys": self.movie_keys,
            "titles": self.titles,
            "years": self.years,
            "genre_keys": self.genre_keys,
            "genre_names": self.genre_names,
            "popularity": self.popularity,
            "r_user": ratings["user"].to_numpy().astype(str),
            "r_movie": ratings["movie"].to_numpy(),
            "r_rating": ratings["rating"].to_numpy(),
            "r_timestamp": ratings["timestamp"].to_numpy(),
            "self_weight": self.hop.self_weight,
            **_csr_arrays("genres", self.genres),
            **_csr_arrays("bw", self.hop.bw),
            **_csr_arrays("bt", self.hop.bt),
            **_csr_arrays("similar", self.hop.similar),
        }
        return save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """The catalogue saved at ``path`` (``features.npz.open_arrays``: a folder is mapped,
        an older .npz read); its ratings are read when first used."""
        with open_arrays(path) as z:
            ratings: pd.DataFrame | SavedRatings = SavedRatings(z)
            if not isinstance(z, ArrayFolder):  # an archive closes: read its ratings now
                ratings = ratings.frame()
            return cls(
                movie_keys=z["movie_keys"],
                titles=z["titles"],
                years=z["years"],
                genre_keys=z["genre_keys"],
                genre_names=z["genre_names"],
                genres=_csr_load("genres", z),
                popularity=z["popularity"],
                ratings_source=ratings,
                # rebuilt, not taken as saved: files written before lone columns were
                # dropped get the leaner operator too
                hop=hop_graph(_csr_load("bw", z), _csr_load("bt", z), _csr_load("similar", z)),
            )


def _build_hop(
    index: pd.Series,
    edges: Mapping[EdgeKind, pd.DataFrame],
    weights: Mapping[EdgeKind, float],
    n: int,
) -> HopGraph:
    """The factored hop operator from content and similar_to edges (see module doc)."""
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    colw: list[np.ndarray] = []
    offset = 0
    for kind in CONTENT_EDGES:
        w = float(weights.get(kind, 0.0))
        frame = edges.get(kind)
        if not w or frame is None or not len(frame):
            continue
        spec = EDGE_SPECS[kind]
        movie_col, other_col = ("src", "dst") if spec.src is VertexKind.MOVIE else ("dst", "src")
        pairs = pd.DataFrame(
            {"m": frame[movie_col].astype(str), "v": frame[other_col].astype(str)}
        ).drop_duplicates()  # each edge counts once, whatever its attributes
        pairs = pairs[pairs["m"].isin(index.index)]
        vkeys, vcodes = np.unique(pairs["v"].to_numpy(), return_inverse=True)
        rows.append(index[pairs["m"]].to_numpy())
        cols.append(vcodes + offset)
        colw.append(np.full(vkeys.shape[0], w))
        offset += vkeys.shape[0]
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    wcol = np.concatenate(colw) if colw else np.zeros(0)
    b = sp.csr_matrix((np.ones(r.shape[0]), (r, c)), shape=(n, offset))
    bw = sp.csr_matrix(b @ sp.diags(wcol)) if offset else b

    ws = float(weights.get(EdgeKind.SIMILAR_TO, 0.0))
    sf = edges.get(EdgeKind.SIMILAR_TO)
    if ws and sf is not None and len(sf):
        pairs = pd.DataFrame({"a": sf["src"].astype(str), "b": sf["dst"].astype(str)})
        pairs = pairs[pairs["a"].isin(index.index) & pairs["b"].isin(index.index)]
        pairs = pairs[pairs["a"] != pairs["b"]].drop_duplicates()
        ia, ib = index[pairs["a"]].to_numpy(), index[pairs["b"]].to_numpy()
        s = sp.csr_matrix((np.ones(ia.shape[0]), (ia, ib)), shape=(n, n))
        similar = sp.csr_matrix((s + s.T) * ws)
    else:
        similar = sp.csr_matrix((n, n))
    return hop_graph(bw, b.T, similar)
