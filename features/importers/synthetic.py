"""A seeded synthetic movie graph with heavy-tailed popularity, for benchmarks and scale tests.

Real data sets are small (MovieLens latest-small has 9.7K movies); the stores must be measured at
catalogue scale (100K movies, 1M+ edges). Popularity of movies, people, genres and tags follows a
Zipf law so that a few vertices have huge degrees, as in real catalogues, which is what makes
traversals expensive. The same arguments always give the same batch. It models cast,
directors, writers, genres, tags, similar_to and users; not the crew (produced, shot, composed)
and facet (country, language, company) kinds only Freebase and TMDB data carry.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind

log = logging.getLogger(__name__)

GENRE_NAMES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "Biography",
)

_EPOCH_START = 946_684_800  # 2000-01-01
_EPOCH_SPAN = 20 * 365 * 86_400


def _zipf_p(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf probabilities over n items, assigned to items in a random order."""
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    p /= p.sum()
    return p[rng.permutation(n)]


def _sample(n: int, size: int, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``size`` draws from range(n) with probabilities p (inverse CDF; faster than choice)."""
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)


def _unique_pairs(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs, sorted by a then b."""
    codes = np.unique(a.astype(np.int64) * nb + b)
    return codes // nb, codes % nb


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal (sorted) group ids."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    run = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run + 1


def _distinct_per_row(
    rows: int, k: int, n: int, p: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly k distinct draws from range(n) per row (probabilities p, without replacement),
    as (row, item) pairs sorted by row then item."""
    codes = np.zeros(0, dtype=np.int64)
    short = np.arange(rows)
    need = np.full(rows, k)
    for _ in range(8):
        if not len(short):
            break
        r = np.repeat(short, need[short] * 2 + 2)
        fresh = r.astype(np.int64) * n + _sample(n, len(r), p, rng)
        _, first = np.unique(fresh, return_index=True)
        fresh = np.setdiff1d(fresh[np.sort(first)], codes, assume_unique=True)  # keeps draw order
        fresh = fresh[_rank_within(fresh // n) <= need[fresh // n]]
        codes = np.concatenate([codes, fresh])
        need = k - np.bincount(codes // n, minlength=rows)
        short = np.flatnonzero(need > 0)
    for row in short:  # rare: very small catalogues; fill uniformly from what is left
        taken = codes[codes // n == row] % n
        rest = np.setdiff1d(np.arange(n), taken)
        codes = np.append(codes, row * n + rng.choice(rest, need[row], replace=False))
    codes.sort()
    return codes // n, codes % n


def _keys(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(1, n + 1)], dtype=object)


def generate_synthetic(
    *,
    movies: int = 100_000,
    people: int = 300_000,
    users: int = 10_000,
    ratings_per_user: int = 40,
    genres: int = 20,
    tags: int = 1000,
    seed: int = 0,
) -> GraphBatch:
    """A synthetic catalogue: movies, people, genres, tags, users and their edges.

    Per movie about 5 actors, 1.1 directors, 1.5 writers, 2 genres and 2.5 tags, drawn with
    Zipf popularity; each user rates ``ratings_per_user`` distinct movies (popular ones more
    often), in half steps from 0.5 to 5, and watched / not-interested a few more; about one movie
    in twenty has a similar_to edge. At the defaults that is about 1.6M edges.
    """
    for name, value in (("movies", movies), ("people", people), ("users", users)):
        if value < 1:
            raise ValueError(f"generate_synthetic: {name} must be >= 1, got {value}")
    if not 1 <= genres <= len(GENRE_NAMES):
        raise ValueError(
            f"generate_synthetic: genres must be in 1..{len(GENRE_NAMES)}, got {genres}"
        )
    if tags < 1 or ratings_per_user < 0:
        raise ValueError(
            f"generate_synthetic: tags must be >= 1 and ratings_per_user >= 0, "
            f"got tags={tags}, ratings_per_user={ratings_per_user}"
        )
    rng = np.random.default_rng(seed)
    ratings_per_user = min(ratings_per_user, movies)

    movie_keys = np.array([str(i) for i in range(1, movies + 1)], dtype=object)
    person_keys = _keys("p", people)
    tag_keys = _keys("t", tags)
    user_keys = _keys("u", users)
    genre_names = np.array(GENRE_NAMES[:genres], dtype=object)
    genre_keys = np.array([g.lower().replace("-", "_") for g in genre_names], dtype=object)

    p_movie = _zipf_p(movies, 0.9, rng)
    p_person = _zipf_p(people, 0.8, rng)
    p_genre = _zipf_p(genres, 1.0, rng)
    p_tag = _zipf_p(tags, 1.1, rng)
    quality = rng.normal(0.0, 0.7, movies)

    def per_movie(counts: np.ndarray, pool: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = np.repeat(np.arange(movies), counts)
        return _unique_pairs(m, _sample(pool, len(m), p, rng), pool)

    batch = GraphBatch()
    # Edges first, so the movies' "genres" column can be derived from in_genre.
    m, g = per_movie(1 + np.minimum(rng.poisson(1.0, movies), 3), genres, p_genre)
    genre_str = pd.Series(genre_names[g]).groupby(m).agg("|".join)
    batch.add_edges(EdgeKind.IN_GENRE, pd.DataFrame({"src": movie_keys[m], "dst": genre_keys[g]}))

    m, t = per_movie(rng.poisson(2.5, movies), tags, p_tag)
    weight = rng.uniform(0.1, 1.0, len(m)).astype(np.float32)
    batch.add_edges(
        EdgeKind.TAGGED, pd.DataFrame({"src": movie_keys[m], "dst": tag_keys[t], "weight": weight})
    )

    m, p = per_movie(1 + rng.poisson(4.0, movies), people, p_person)
    batch.add_edges(
        EdgeKind.ACTED_IN,
        pd.DataFrame({"src": person_keys[p], "dst": movie_keys[m], "order": _rank_within(m)}),
    )
    m, p = per_movie(1 + (rng.random(movies) < 0.1), people, p_person)
    batch.add_edges(EdgeKind.DIRECTED, pd.DataFrame({"src": person_keys[p], "dst": movie_keys[m]}))
    m, p = per_movie(1 + (rng.random(movies) < 0.5), people, p_person)
    batch.add_edges(EdgeKind.WROTE, pd.DataFrame({"src": person_keys[p], "dst": movie_keys[m]}))

    # Ratings: each user rates distinct movies, popular ones more often.
    u, m = _distinct_per_row(users, ratings_per_user, movies, p_movie, rng)
    bias = rng.normal(0.0, 0.5, users)
    raw = 3.5 + bias[u] + quality[m] + rng.normal(0.0, 0.8, len(u))
    rating = np.clip(np.round(raw * 2.0) / 2.0, 0.5, 5.0).astype(np.float32)
    ts = _EPOCH_START + rng.integers(0, _EPOCH_SPAN, len(u))
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            {"src": user_keys[u], "dst": movie_keys[m], "rating": rating, "timestamp": ts}
        ),
    )
    u, m = _unique_pairs(
        rng.integers(0, users, users * 2), _sample(movies, users * 2, p_movie, rng), movies
    )
    batch.add_edges(
        EdgeKind.WATCHED,
        pd.DataFrame(
            {
                "src": user_keys[u],
                "dst": movie_keys[m],
                "timestamp": _EPOCH_START + rng.integers(0, _EPOCH_SPAN, len(u)),
                "completion": rng.uniform(5.0, 100.0, len(u)).astype(np.float32),
            }
        ),
    )
    u, m = _unique_pairs(rng.integers(0, users, users), rng.integers(0, movies, users), movies)
    batch.add_edges(
        EdgeKind.NOT_INTERESTED,
        pd.DataFrame(
            {
                "src": user_keys[u],
                "dst": movie_keys[m],
                "timestamp": _EPOCH_START + rng.integers(0, _EPOCH_SPAN, len(u)),
            }
        ),
    )
    n_sim = max(movies // 20, 1)
    a, b = _unique_pairs(
        rng.integers(0, movies, n_sim), _sample(movies, n_sim, p_movie, rng), movies
    )
    keep = a != b
    batch.add_edges(
        EdgeKind.SIMILAR_TO,
        pd.DataFrame(
            {
                "src": movie_keys[a[keep]],
                "dst": movie_keys[b[keep]],
                "score": rng.uniform(0.5, 1.0, int(keep.sum())).astype(np.float32),
            }
        ),
    )

    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": movie_keys,
                "title": np.array([f"Synthetic Movie {k}" for k in movie_keys], dtype=object),
                "year": rng.integers(1920, 2025, movies),
                "genres": genre_str.reindex(np.arange(movies), fill_value="").to_numpy(
                    dtype=object
                ),
            }
        ),
    )
    batch.add_vertices(
        VertexKind.PERSON,
        pd.DataFrame({"key": person_keys, "name": [f"Person {i}" for i in range(1, people + 1)]}),
    )
    batch.add_vertices(VertexKind.GENRE, pd.DataFrame({"key": genre_keys, "name": genre_names}))
    batch.add_vertices(
        VertexKind.TAG,
        pd.DataFrame({"key": tag_keys, "name": [f"tag {i}" for i in range(1, tags + 1)]}),
    )
    batch.add_vertices(
        VertexKind.USER,
        pd.DataFrame({"key": user_keys, "name": [f"User {i}" for i in range(1, users + 1)]}),
    )
    log.info(
        "synthetic graph (seed %d): %d vertices, %d edges",
        seed,
        sum(len(f) for f in batch.vertices.values()),
        sum(len(f) for f in batch.edges.values()),
    )
    return batch
