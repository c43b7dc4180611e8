"""MovieLens importer: ml-latest(-small) CSVs, ML-1M ``::`` files and ML-100K ``u.*`` files.

The format is detected from the files in the folder. The result is one validated GraphBatch:
movies, users, genres and tags as vertices; ``rated``, ``in_genre`` and ``tagged`` edges. A
rating or tag for a movie the movie file does not list is an error naming file and line.

ML-100K numbers its movies in its own id space (not MovieLens' global ids, which latest-small
and ML-1M share), so do not import it into the same home as the others.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind
from features.importers.common import clean_genres, genre_links, tag_links
from features.importers.errors import ImportFileError
from features.importers.repairs import Repairs
from features.importers.tables import Table, read_table
from features.importers.titles import table_titles

log = logging.getLogger(__name__)

Format = Literal["latest", "1m", "100k"]
RATING_RANGE = (0.5, 5.0)


def detect_format(folder: Path) -> Format:
    """Which MovieLens release a folder holds, from the names of its files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportFileError(folder, "not a folder (expected a MovieLens data folder)")
    if (folder / "movies.csv").exists() or (folder / "ratings.csv").exists():
        return "latest"
    if (folder / "movies.dat").exists() or (folder / "ratings.dat").exists():
        return "1m"
    if (folder / "u.data").exists() or (folder / "u.item").exists():
        return "100k"
    raise ImportFileError(
        folder, "no MovieLens files found (expected movies.csv, movies.dat or u.data)"
    )


def load_movielens(folder: Path, repairs: Repairs | None = None) -> GraphBatch:
    """Parse and validate a MovieLens folder into a GraphBatch (nothing is stored). Bad values
    in optional columns are repaired and counted in ``repairs`` (strict: raised)."""
    folder = Path(folder)
    fmt = detect_format(folder)
    log.info("reading MovieLens (%s format) from %s", fmt, folder)
    fixes = repairs if repairs is not None else Repairs()
    if fmt == "latest":
        batch = _latest(folder, fixes)
    elif fmt == "1m":
        batch = _ml1m(folder, fixes)
    else:
        batch = _ml100k(folder, fixes)
    fixes.log_summary("MovieLens")
    return batch


def _ratings(table: Table, cols: tuple[str, str, str, str], movie_ids: np.ndarray) -> pd.DataFrame:
    """Validated ``rated`` edges (user key -> movie key) from a ratings table."""
    user_col, movie_col, rating_col, ts_col = cols
    users = table.ints(user_col)
    movies = table.ints(movie_col)
    table.check_known(movie_col, movies, pd.Index(movie_ids), "movie id (not in the movie file)")
    rating = table.floats(rating_col, low=RATING_RANGE[0], high=RATING_RANGE[1])
    ts = table.timestamps(ts_col)
    return pd.DataFrame(
        {
            "src": users.astype(str),
            "dst": movies.astype(str),
            "rating": rating.astype("float32"),
            "timestamp": ts,
        }
    )


def _assemble(
    movies: pd.DataFrame,
    rated: pd.DataFrame,
    user_keys: np.ndarray,
    tags: pd.DataFrame | None = None,
) -> GraphBatch:
    """The batch from a movie frame (key, title, year, imdb_id, tmdb_id, genres), rated edges,
    user keys and optional (movie key, tag text) rows."""
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, movies)
    users = pd.DataFrame({"key": pd.unique(np.concatenate([user_keys, rated["src"].to_numpy()]))})
    batch.add_vertices(VertexKind.USER, users)
    genre_v, genre_e = genre_links(movies["key"], movies["genres"])
    batch.add_vertices(VertexKind.GENRE, genre_v)
    batch.add_edges(EdgeKind.IN_GENRE, genre_e)
    batch.add_edges(EdgeKind.RATED, rated)
    if tags is not None and len(tags):
        tag_v, tag_e = tag_links(tags["movie"], tags["tag"])
        batch.add_vertices(VertexKind.TAG, tag_v)
        batch.add_edges(EdgeKind.TAGGED, tag_e)
    batch = batch.deduplicated()
    log.info(
        "parsed %d movies, %d users, %d ratings, %d genres, %d tags",
        len(batch.vertices[VertexKind.MOVIE]),
        len(batch.vertices[VertexKind.USER]),
        len(batch.edges[EdgeKind.RATED]),
        len(batch.vertices[VertexKind.GENRE]),
        len(batch.vertices.get(VertexKind.TAG, ())),
    )
    return batch


def _latest(folder: Path, fixes: Repairs) -> GraphBatch:
    mt = read_table(
        folder / "movies.csv", ("movieId", "title", "genres"), sep=",", header=True, repairs=fixes
    )
    ids = mt.ints("movieId")
    mt.check_unique("movieId", ids)
    title, year = table_titles(mt, "title", required=False)
    movies = pd.DataFrame(
        {
            "key": ids.astype(str),
            "title": title.to_numpy(),
            "year": year,
            "genres": clean_genres(mt.text("genres", required=False)).to_numpy(),
        }
    )
    links_path = folder / "links.csv"
    if links_path.exists():
        lt = read_table(
            links_path, ("movieId", "imdbId", "tmdbId"), sep=",", header=True, repairs=fixes
        )
        link_ids = lt.ints("movieId")
        lt.check_known("movieId", link_ids, pd.Index(ids), "movie id (not in movies.csv)")
        imdb = lt.ints("imdbId", required=False, prefix="tt")
        links = pd.DataFrame(
            {
                "key": link_ids.astype(str),
                "imdb_id": np.where(imdb > 0, pd.Series(imdb).map("tt{:07d}".format), ""),
                "tmdb_id": lt.ints("tmdbId", required=False),
            }
        ).drop_duplicates("key", keep="last")
        movies = movies.merge(links, on="key", how="left")
    else:
        log.info("%s: no links.csv, movies get no IMDb/TMDB ids", folder)

    rt = read_table(
        folder / "ratings.csv",
        ("userId", "movieId", "rating", "timestamp"),
        sep=",",
        header=True,
        repairs=fixes,
    )
    rated = _ratings(rt, ("userId", "movieId", "rating", "timestamp"), ids)

    tags = None
    tags_path = folder / "tags.csv"
    if tags_path.exists():
        tt = read_table(
            tags_path,
            ("userId", "movieId", "tag", "timestamp"),
            sep=",",
            header=True,
            repairs=fixes,
        )
        tag_movies = tt.ints("movieId")
        tt.check_known("movieId", tag_movies, pd.Index(ids), "movie id (not in movies.csv)")
        tt.ints("userId")
        tt.timestamps("timestamp")
        text = tt.text("tag", required=False)
        empty = (text == "").to_numpy()
        tt.repair("tag", empty, "empty tag, row left out", "{value} is empty")
        tags = pd.DataFrame({"movie": tag_movies.astype(str), "tag": text.to_numpy()})[~empty]
    return _assemble(movies, rated, np.array([], dtype=object), tags)


def _ml1m(folder: Path, fixes: Repairs) -> GraphBatch:
    mt = read_table(
        folder / "movies.dat",
        ("MovieID", "Title", "Genres"),
        sep="::",
        header=False,
        encoding="latin-1",
        quoted=False,
        repairs=fixes,
    )
    ids = mt.ints("MovieID")
    mt.check_unique("MovieID", ids)
    title, year = table_titles(mt, "Title", required=False)
    movies = pd.DataFrame(
        {
            "key": ids.astype(str),
            "title": title.to_numpy(),
            "year": year,
            "genres": clean_genres(mt.text("Genres", required=False)).to_numpy(),
        }
    )
    cols = ("UserID", "MovieID", "Rating", "Timestamp")
    rt = read_table(
        folder / "ratings.dat",
        cols,
        sep="::",
        header=False,
        encoding="latin-1",
        quoted=False,
        repairs=fixes,
    )
    rated = _ratings(rt, cols, ids)
    user_keys = _optional_user_keys(
        folder / "users.dat", ("UserID", "Gender", "Age", "Occupation", "Zip-code"), "::", fixes
    )
    return _assemble(movies, rated, user_keys)


def _optional_user_keys(
    path: Path, columns: tuple[str, ...], sep: str, fixes: Repairs
) -> np.ndarray:
    """User keys from an optional users file (ML-1M users.dat, ML-100K u.user; the id is the
    first column), so users without ratings still become vertices; empty when absent."""
    if not path.exists():
        return np.array([], dtype=object)
    table = read_table(
        path, columns, sep=sep, header=False, encoding="latin-1", quoted=False, repairs=fixes
    )
    return table.ints(columns[0]).astype(str).astype(object)


_ITEM_FIXED = ("movie id", "movie title", "release date", "video release date", "IMDb URL")


def _ml100k(folder: Path, fixes: Repairs) -> GraphBatch:
    gt = read_table(
        folder / "u.genre",
        ("genre", "index"),
        sep="|",
        header=False,
        encoding="latin-1",
        quoted=False,
        repairs=fixes,
    )
    names = gt.text("genre")
    order = gt.ints("index")
    genre_names = list(names.to_numpy()[np.argsort(order, kind="stable")])
    it = read_table(
        folder / "u.item",
        (*_ITEM_FIXED, *genre_names),
        sep="|",
        header=False,
        encoding="latin-1",
        quoted=False,
        repairs=fixes,
    )
    ids = it.ints("movie id")
    it.check_unique("movie id", ids)
    title, year = table_titles(it, "movie title", required=False)
    released = it.text("release date", required=False).str.extract(r"(\d{4})$")[0]
    year = np.where(year > 0, year, released.fillna("0").astype("int64").to_numpy())
    flags = np.column_stack([it.ints(g, required=False) for g in genre_names])
    bad = ~np.isin(flags, (0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise it.fail(int(row), f"column {genre_names[col]!r}: genre flags must be 0 or 1")
    names_arr = np.array(genre_names, dtype=object)
    genres = ["|".join(names_arr[f.astype(bool)]) for f in flags]
    movies = pd.DataFrame(
        {"key": ids.astype(str), "title": title.to_numpy(), "year": year, "genres": genres}
    )
    movies["genres"] = clean_genres(movies["genres"])
    cols = ("user id", "item id", "rating", "timestamp")
    rt = read_table(folder / "u.data", cols, sep="\t", header=False, quoted=False, repairs=fixes)
    rated = _ratings(rt, cols, ids)
    user_keys = _optional_user_keys(
        folder / "u.user", ("user id", "age", "gender", "occupation", "zip code"), "|", fixes
    )
    return _assemble(movies, rated, user_keys)
