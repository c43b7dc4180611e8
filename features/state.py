"""User history and the fixed-size float32 state vector the agent sees.

State layout (``StateBuilder.layout`` gives the slices), with d the embedding dim and G the
number of genres, all entries in [-1, 1]:

- ``user``    (d): sum over rated movies of w_m e_m / n, with w_m = (rating - 3) / 2;
- ``recent``  (d): mean embedding of the last ``n_recent`` positive movies (DRR's pooled items);
- ``product`` (d): user * recent, elementwise (DRR's interaction term);
- ``graph``   (d): pooled embedding of unseen movies reached in 1 and 2 hops from the
  positives (``pool_hops``; worlds built before it was a setting pool hops 2 and 3), weighted
  by path counts (each hop's weights normalised, the pools averaged);
- ``genres``  (G): genre affinity, sum of w_m over rated movies in the genre / n (the store's
  ``user_affinity`` definition);
- ``stats``   (2): log1p(n rated) / log1p(1000) (capped at 1), fraction of ratings positive.

Speed trade-off: hop path counts come from the Catalog's sparse hop operator, cached on the
``UserHistory`` and recomputed only when the user's positives change, not from a store query per
step. The pool needs the deepest level only at the user's seen movies (the pooled sums over all
movies are precomputed), so unless candidates ask for that level over the whole catalogue it is
computed at those rows alone, which spares one of the three passes over the graph. On graphs
large enough for ``features.graph.reach_pool`` (500K movies), both levels at the seen movies
come from it, with no pass over the graph at all (equal up to the order of additions).

The snapshot is as fresh as the Catalog: edges added to the store afterwards are not seen until
the Catalog is rebuilt (the service rebuilds it when it reloads the graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.graph.hop import HopGraph
from features.graph.reach_pool import TwoHops, reach_pool
from features.graph.schema import POSITIVE_RATING
from features.npz import RowReader

# embedding tables at least this large are read row by row from their file, not the mapping
VECTOR_FILE_MIN_BYTES = 16 * 2**20

MAX_HOPS = 3
# Hops the state's graph pool averages over. 1-2 scored as well as 2-3 in the simulator (DDPG
# 3.14 [2.93, 3.36] vs 3.17 [2.98, 3.36], 5 seeds x 200 episodes) and needs no third level, which
# saves a user's first request a half pass over the graph and training ~10% of its time.
POOL_HOPS = (1, 2)
LEGACY_POOL_HOPS = (2, 3)  # what worlds saved without the setting were trained with
# Below this many graph entries the deepest level is computed whole (a pass costs less than the
# per-row bookkeeping; the simulator's ml-latest-small graph is far below it).
ROWS_ONLY_MIN_NNZ = 200_000


PoolTables = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def pool_tables(
    catalog: Catalog, vectors: npt.NDArray[np.floating], pool_hops: tuple[int, ...]
) -> PoolTables:
    """(H^h E for h in ``pool_hops``, stacked: (hops, movies, d); H^h 1 likewise: (hops,
    movies)), H the catalogue's hop operator and E the embeddings, in float64: what the state's
    graph pool sums rows of (``StateBuilder._graph_pool``). At 500K movies and d = 16 the first
    is 122 MB, so a saved bundle keeps them (features.bundle) for workers to map, not rebuild."""
    emb_powers, tot_powers = [], []
    e, t = np.asarray(vectors).astype(np.float64), np.ones(catalog.n_movies)
    for _ in range(max(pool_hops)):
        e, t = catalog.hop.apply(e), catalog.hop.apply(t)
        emb_powers.append(e)
        tot_powers.append(t)
    return (
        np.stack([emb_powers[h - 1] for h in pool_hops]),
        np.stack([tot_powers[h - 1] for h in pool_hops]),
    )


def check_pool_tables(
    tables: PoolTables, n_movies: int, dim: int, pool_hops: tuple[int, ...]
) -> None:
    """ValueError unless ``tables`` have the shapes and dtype ``pool_tables`` gives."""
    emb, tot = tables
    want = ((len(pool_hops), n_movies, dim), (len(pool_hops), n_movies))
    if (emb.shape, tot.shape) != want or emb.dtype != np.float64 or tot.dtype != np.float64:
        raise ValueError(
            f"pool tables of shapes {emb.shape}, {tot.shape} ({emb.dtype}, {tot.dtype}) do not "
            f"fit {n_movies} movies, {dim} dimensions and pool hops {pool_hops} (float64)"
        )


def _check_hops(hops: int) -> None:
    if hops not in (1, 2, 3):
        raise ValueError(f"hops must be 1, 2 or 3, got {hops}")


@dataclass
class UserHistory:
    """What one user has rated or otherwise seen, in order, with a cached hop-score table."""

    n_movies: int
    min_rating: float = POSITIVE_RATING
    items: list[int] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    positives: list[int] = field(default_factory=list)
    # When the latest rating was made (seconds), if known: the time retrievers with a time
    # prior (features.blend) score at; None in the simulator, which has no clock.
    last_time: float | None = None
    seen: npt.NDArray[np.bool_] = field(init=False)
    # H^h s for h = 1..len(_levels) over all movies (raw: may hold round-off below 0), filled
    # lazily, dropped with a new positive.
    _levels: list[npt.NDArray[np.float64]] = field(default_factory=list, init=False, repr=False)
    # Values derived from the hop levels (stacked levels, the next level at some rows, ranked
    # candidates), dropped with them.
    derived: dict[object, object] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.seen = np.zeros(self.n_movies, dtype=bool)

    @classmethod
    def from_ratings(
        cls,
        n_movies: int,
        movies: npt.ArrayLike,
        ratings: npt.ArrayLike,
        *,
        min_rating: float = POSITIVE_RATING,
        last_time: float | None = None,
    ) -> UserHistory:
        """A history from movie rows and their ratings, oldest first (the same as ``add``
        for each in turn, done on whole arrays); ``last_time``: when the latest was made."""
        rows = np.asarray(movies).astype(np.int64).reshape(-1)
        values = np.asarray(ratings, dtype=np.float64).reshape(-1)
        if rows.shape != values.shape:
            raise ValueError(f"{rows.shape[0]} movie rows but {values.shape[0]} ratings")
        bad = (rows < 0) | (rows >= n_movies)
        if np.any(bad):
            raise ValueError(f"movie row {int(rows[np.argmax(bad)])} out of range [0, {n_movies})")
        h = cls(n_movies=n_movies, min_rating=min_rating, last_time=last_time)
        h.items = rows.tolist()
        h.ratings = values.tolist()
        h.positives = rows[values >= min_rating].tolist()
        h.seen[rows] = True
        return h

    def add(self, movie: int, rating: float) -> None:
        """Record a rating (most recent last); a positive one invalidates the hop cache."""
        if not 0 <= movie < self.n_movies:
            raise ValueError(f"movie row {movie} out of range [0, {self.n_movies})")
        self.items.append(movie)
        self.ratings.append(rating)
        self.seen[movie] = True
        if rating >= self.min_rating:
            self.positives.append(movie)
            self._levels = []
            self.derived.clear()

    def mark_seen(self, movie: int) -> None:
        """A movie watched or dismissed without a rating: never a candidate again."""
        self.seen[movie] = True

    def _full(self, hop: HopGraph, hops: int) -> list[npt.NDArray[np.float64]]:
        """The raw levels 1..hops over all movies, computing only those not cached yet (a deeper
        level leaves the shallower ones, and so everything derived from them, as they were)."""
        if not self.positives:
            return [np.zeros(self.n_movies) for _ in range(hops)]
        while len(self._levels) < hops:
            if not self._levels:
                seeds = np.unique(np.asarray(self.positives, dtype=np.int64))
                self._levels.append(hop.first_of_rows(seeds))
            else:  # reusing B^T of the last level when hop_levels_at already computed it
                cols = self.derived.get(("column_sums", len(self._levels)))
                last = self._levels[-1]
                self._levels.append(hop.step(last, cols if isinstance(cols, np.ndarray) else None))
        return self._levels[:hops]

    def hop_levels(self, hop: HopGraph, hops: int = MAX_HOPS) -> npt.NDArray[np.float64]:
        """(hops, n_movies) exact-h-hop path counts from the positives (seen not removed).
        Cached until a new positive arrives (deeper levels are computed when first asked);
        callers must not modify it."""
        _check_hops(hops)
        full = self._full(hop, hops)
        stacked = self.derived.get(("levels", hops))
        if not isinstance(stacked, np.ndarray):
            stacked = np.maximum(np.stack(full), 0.0)  # counts: clear float round-off below 0
            self.derived[("levels", hops)] = stacked
        return stacked

    def hop_sum(self, hop: HopGraph, hops: int = MAX_HOPS) -> npt.NDArray[np.float64]:
        """``hop_levels(hop, hops).sum(axis=0)``, equal bit for bit (the levels added in
        order), in a new array, without stacking the levels into a table first."""
        _check_hops(hops)
        stacked = self.derived.get(("levels", hops))
        if isinstance(stacked, np.ndarray):
            return np.asarray(stacked.sum(axis=0))
        full = self._full(hop, hops)
        total = np.maximum(full[0], 0.0)
        for level in full[1:]:
            total += np.maximum(level, 0.0)
        return total

    def two_hops(self, hop: HopGraph) -> TwoHops | None:
        """Levels 1-2 at any rows without a whole hop (features.graph.reach_pool), kept until
        a new positive arrives; None on graphs below its gate (and without positives)."""
        pool = reach_pool(hop)
        if pool is None or not self.positives:
            return None
        key = ("two_hops", id(pool))
        two = self.derived.get(key)
        if not isinstance(two, TwoHops):
            two = TwoHops(pool, np.asarray(self.positives, dtype=np.int64))
            self.derived[key] = two
        return two

    def hop_levels_at(
        self, hop: HopGraph, rows: npt.NDArray[np.int64], hops: int = MAX_HOPS
    ) -> npt.NDArray[np.float64]:
        """``hop_levels(hop, hops)[:, rows]``, equal bit for bit, without a whole hop for the
        deepest level when it is not cached: half a hop (the column sums of the level before,
        kept) and then only the entries of rows not asked for before (values kept per row)."""
        _check_hops(hops)
        rows = np.asarray(rows, dtype=np.int64)
        if hops == 2 and len(self._levels) < hops:
            two = self.two_hops(hop)  # large graphs: no pass at all (features.graph.reach_pool)
            if two is not None:
                return np.maximum(two.levels(rows), 0.0)
        small = hop.bt.nnz < ROWS_ONLY_MIN_NNZ  # a whole pass is cheaper than the bookkeeping
        if small or not self.positives or len(self._levels) >= hops or hops == 1:
            return self.hop_levels(hop, hops)[:, rows]
        full = self._full(hop, hops - 1)
        known: dict[int, float] = self.derived.setdefault(("level_at", hops), {})  # type: ignore[assignment]
        missing = np.array([r for r in rows.tolist() if r not in known], dtype=np.int64)
        if missing.shape[0]:  # rows seen since the last call (one per simulator step)
            cols = self.derived.get(("column_sums", hops - 1))
            if not isinstance(cols, np.ndarray):
                cols = hop.column_sums(full[-1])
                self.derived[("column_sums", hops - 1)] = cols
            values = hop.apply_rows(full[-1], missing, cols)
            known.update(zip(missing.tolist(), values.tolist(), strict=True))
        deepest = np.array([known[r] for r in rows.tolist()], dtype=np.float64)
        return np.maximum(np.stack([*(level[rows] for level in full), deepest]), 0.0)


class StateBuilder:
    """Builds the state vector (module doc) for a user from their history."""

    def __init__(
        self,
        catalog: Catalog,
        embeddings: ItemEmbeddings,
        *,
        n_recent: int = 10,
        pool_hops: tuple[int, ...] = POOL_HOPS,
        tables: PoolTables | None = None,
    ):
        embeddings.check_catalog(catalog)
        if n_recent <= 0:
            raise ValueError(f"n_recent must be positive, got {n_recent}")
        pool_hops = tuple(int(h) for h in pool_hops)
        if not pool_hops or any(h not in (1, 2, 3) for h in pool_hops):
            raise ValueError(f"pool_hops must be hops from 1 to 3, got {pool_hops!r}")
        self.pool_hops = pool_hops
        self.catalog = catalog
        # rows are read as float64 when used, not held so: the float32 vectors are the
        # bundle's (mapped, shared between workers) and genres are 0/1 (one byte each)
        self.vectors = embeddings.vectors
        binary = np.isin(catalog.genres.data, (0.0, 1.0)).all()
        self.genres = np.asarray(catalog.genres.todense(), dtype=np.uint8 if binary else None)
        self.n_recent = n_recent
        # H is symmetric, so seed . (H^h E) = (H^h seed) . E: the pooled sums over all movies
        # for any set of positives are sums of rows of these (one per pooled hop), no per-user
        # pass. Given (a bundle saved them: mapped, shared between workers) or computed.
        if tables is None:
            tables = pool_tables(catalog, self.vectors, pool_hops)
        check_pool_tables(tables, catalog.n_movies, embeddings.dim, pool_hops)
        self._hop_emb, self._hop_tot = tables  # (hops, movies, d), (hops, movies)
        # a request reads the rows of its positives: from the file when mapped (RowReader)
        self._emb_rows, self._tot_rows = RowReader(tables[0], 1), RowReader(tables[1], 1)
        # ... and of the movies it reads embeddings of (features.ranker ranks with it too):
        # through the mapping, 100 users' rows made all 30 MB of them resident in a worker at
        # 500K movies; below VECTOR_FILE_MIN_BYTES (100K movies: 6.4 MB) the mapping is cheaper
        # (a preadv of ~200 rows cost the warm request +0.7 ms on ml-latest-small)
        self.vector_rows = RowReader(self.vectors, min_bytes=VECTOR_FILE_MIN_BYTES)
        d, g = embeddings.dim, catalog.n_genres
        names = ("user", "recent", "product", "graph")
        self.layout: dict[str, slice] = {n: slice(i * d, (i + 1) * d) for i, n in enumerate(names)}
        self.layout["genres"] = slice(4 * d, 4 * d + g)
        self.layout["stats"] = slice(4 * d + g, 4 * d + g + 2)

    @property
    def observation_size(self) -> int:
        return self.layout["stats"].stop

    def new_history(self) -> UserHistory:
        return UserHistory(n_movies=self.catalog.n_movies)

    def build(self, history: UserHistory) -> npt.NDArray[np.float32]:
        out = np.zeros(self.observation_size, dtype=np.float64)
        n = len(history.items)
        if n:
            items = np.asarray(history.items, dtype=np.int64)
            w = (np.asarray(history.ratings, dtype=np.float64) - 3.0) / 2.0
            out[self.layout["user"]] = w @ self._emb(items) / n
            out[self.layout["genres"]] = w @ self.genres[items].astype(np.float64) / n
            out[self.layout["stats"]] = (
                min(np.log1p(n) / np.log1p(1000.0), 1.0),
                len(history.positives) / n,
            )
        if history.positives:
            recent = np.asarray(history.positives[-self.n_recent :], dtype=np.int64)
            out[self.layout["recent"]] = self._emb(recent).mean(axis=0)
            out[self.layout["product"]] = out[self.layout["user"]] * out[self.layout["recent"]]
            out[self.layout["graph"]] = self._graph_pool(history)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def _emb(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The embeddings of ``rows`` in float64 (the values a float64 copy would hold)."""
        return np.asarray(self.vector_rows.take(rows), dtype=np.float64)

    def _graph_pool(self, history: UserHistory) -> npt.NDArray[np.float64]:
        """Mean over ``pool_hops`` of the path-count-weighted mean embedding of unseen movies.

        The sums over all movies come from the precomputed H^h E rows of the positives; the
        seen movies' share is subtracted, so a call costs O((positives + seen) x d), not
        O(movies x d).
        """
        pos = np.unique(np.asarray(history.positives, dtype=np.int64))
        num_all = self._emb_rows.take(pos).sum(axis=1)
        tot_all = self._tot_rows.take(pos).sum(axis=1)
        seen = np.flatnonzero(history.seen)
        deepest = max(self.pool_hops)
        levels = history.hop_levels_at(self.catalog.hop, seen, deepest)
        at_seen = levels[[h - 1 for h in self.pool_hops]]
        num = num_all - at_seen @ self._emb(seen)
        tot = tot_all - at_seen.sum(axis=1)
        ok = tot > 1e-12 * np.maximum(tot_all, 1.0)
        if not np.any(ok):
            return np.zeros(self.vectors.shape[1])
        return np.asarray((num[ok] / tot[ok][:, None]).mean(axis=0))
