"""HetRec 2011 (MovieLens-2k) side data: directors, genres, countries, tags and posters.

HetRec numbers movies like MovieLens, but its IMDb link is wrong for about 9% of them (for
example id 7 "Sabrina (1995)" points at the 1954 film). So side data is joined only to movies
already in the graph whose ``imdb_id`` equals HetRec's imdbID; the others are counted and
skipped. Files are tab-separated Latin-1; movies.dat, movie_directors.dat and movie_genres.dat
have a header line, movie_countries.dat, movie_tags.dat and tags.dat do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import EdgeKind, VertexKind
from features.importers.common import genre_links, slugs, tag_links
from features.importers.merge import FrameSource, merge_with_existing
from features.importers.repairs import Repairs
from features.importers.tables import Table, read_table

log = logging.getLogger(__name__)


def _tsv(
    path: Path, fixes: Repairs, columns: tuple[str, ...], *, header: bool, extra: bool = False
) -> Table:
    """A HetRec file: tab-separated Latin-1, no quoting."""
    return read_table(
        path,
        columns,
        sep="\t",
        header=header,
        encoding="latin-1",
        quoted=False,
        extra_columns=extra,
        repairs=fixes,
    )


@dataclass(frozen=True)
class HetrecReport:
    """How HetRec's movies met the graph's, and what was added for the agreeing ones."""

    hetrec_movies: int
    agreeing: int  # same id and same IMDb id: joined
    imdb_mismatch: int  # same id, different IMDb id: skipped
    not_in_graph: int  # id the graph does not hold: skipped
    directed_movies: int  # agreeing movies with at least one director
    directors: int
    tagged_edges: int


def load_hetrec(
    folder: Path, graph: FrameSource, repairs: Repairs | None = None
) -> tuple[GraphBatch, HetrecReport]:
    """Parse and validate HetRec side files and join them to ``graph``'s movies (nothing is
    stored). Raises GraphDataError when the graph holds no movies, ImportFileError for bad
    files; bad optional values are repaired and counted in ``repairs``."""
    folder = Path(folder)
    fixes = repairs if repairs is not None else Repairs()
    movies = graph.vertex_frame(VertexKind.MOVIE)
    if len(movies) == 0:
        raise GraphDataError("the graph holds no movies: import MovieLens before HetRec")
    movies = movies.set_index("key", drop=False)

    mt = _tsv(
        folder / "movies.dat", fixes, ("id", "imdbID", "imdbPictureURL"), header=True, extra=True
    )
    het_ids = mt.ints("id")
    mt.check_unique("id", het_ids)
    imdb = mt.ints("imdbID")
    het = pd.DataFrame(
        {
            "key": het_ids.astype(str),
            "imdb_id": pd.Series(imdb).map("tt{:07d}".format).to_numpy(),
            "poster_url": mt.text("imdbPictureURL", required=False).to_numpy(),
        }
    )
    in_graph = het["key"].isin(movies.index)
    graph_imdb = movies["imdb_id"].reindex(het["key"]).to_numpy()
    agree_mask = in_graph.to_numpy() & (graph_imdb == het["imdb_id"].to_numpy())
    agree = het[agree_mask]
    agree_keys = pd.Index(agree["key"])
    known = pd.Index(het["key"])

    dt = _tsv(
        folder / "movie_directors.dat",
        fixes,
        ("movieID", "directorID", "directorName"),
        header=True,
    )
    d_movies = dt.ints("movieID").astype(str)
    dt.check_known("movieID", d_movies, known, "movie id (not in movies.dat)")
    directors = pd.DataFrame(
        {
            "dst": d_movies,
            "src": slugs(dt.text("directorID")).to_numpy(),
            "name": dt.text("directorName", required=False).to_numpy(),
        }
    )
    directors = directors[directors["dst"].isin(agree_keys)]

    gt = _tsv(folder / "movie_genres.dat", fixes, ("movieID", "genre"), header=True)
    g_movies = gt.ints("movieID").astype(str)
    gt.check_known("movieID", g_movies, known, "movie id (not in movies.dat)")
    g_frame = pd.DataFrame({"movie": g_movies, "genre": gt.text("genre").to_numpy()})
    g_frame = g_frame[g_frame["movie"].isin(agree_keys)]

    ct = _tsv(folder / "movie_countries.dat", fixes, ("movieID", "country"), header=False)
    c_movies = ct.ints("movieID").astype(str)
    ct.check_known("movieID", c_movies, known, "movie id (not in movies.dat)")
    c_frame = pd.DataFrame({"movie": c_movies, "country": ct.text("country", required=False)})
    c_frame = c_frame[(c_frame["country"] != "") & c_frame["movie"].isin(agree_keys)]
    countries = c_frame.drop_duplicates().groupby("movie", sort=False)["country"].agg("|".join)

    tt = _tsv(folder / "tags.dat", fixes, ("id", "value"), header=False)
    tag_ids = tt.ints("id")
    tt.check_unique("id", tag_ids)
    tag_text = pd.Series(tt.text("value").to_numpy(), index=tag_ids)
    mtt = _tsv(folder / "movie_tags.dat", fixes, ("movieID", "tagID", "tagWeight"), header=False)
    mt_movies = mtt.ints("movieID").astype(str)
    mtt.check_known("movieID", mt_movies, known, "movie id (not in movies.dat)")
    mt_tags = mtt.ints("tagID")
    mtt.check_known("tagID", mt_tags, tag_text.index, "tag id (not in tags.dat)")
    weights = mtt.floats("tagWeight", low=0.0, high=float("inf"))
    keep = pd.Index(mt_movies).isin(agree_keys)
    tag_v, tag_e = tag_links(
        pd.Series(mt_movies[keep]),
        tag_text.loc[mt_tags[keep]].reset_index(drop=True),
        weights[keep],
    )

    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, _movie_rows(agree, g_frame, countries))
    person_v = directors.drop_duplicates("src")[["src", "name"]].rename(columns={"src": "key"})
    batch.add_vertices(VertexKind.PERSON, person_v)
    batch.add_edges(EdgeKind.DIRECTED, directors[["src", "dst"]])
    genre_v, genre_e = genre_links(g_frame["movie"], g_frame["genre"])
    batch.add_vertices(VertexKind.GENRE, _new_only(genre_v, graph.vertex_frame(VertexKind.GENRE)))
    batch.add_edges(EdgeKind.IN_GENRE, genre_e)
    batch.add_vertices(VertexKind.TAG, _new_only(tag_v, graph.vertex_frame(VertexKind.TAG)))
    batch.add_edges(EdgeKind.TAGGED, tag_e)
    batch = merge_with_existing(batch, graph)
    fixes.log_summary("HetRec")

    report = HetrecReport(
        hetrec_movies=len(het),
        agreeing=int(agree_mask.sum()),
        imdb_mismatch=int((in_graph.to_numpy() & ~agree_mask).sum()),
        not_in_graph=int((~in_graph).sum()),
        directed_movies=int(directors["dst"].nunique()),
        directors=len(batch.vertices[VertexKind.PERSON]),
        tagged_edges=len(batch.edges[EdgeKind.TAGGED]),
    )
    log.info(
        "HetRec: %d of %d movies agree on IMDb id (%d mismatched, %d not in graph); "
        "%d movies get directors",
        report.agreeing,
        report.hetrec_movies,
        report.imdb_mismatch,
        report.not_in_graph,
        report.directed_movies,
    )
    return batch, report


def _movie_rows(agree: pd.DataFrame, genres: pd.DataFrame, countries: pd.Series) -> pd.DataFrame:
    """What HetRec says of each agreeing movie; ``merge_with_existing`` adds the rest."""
    keys = agree["key"]
    return pd.DataFrame(
        {
            "key": keys.to_numpy(),
            "poster_url": agree["poster_url"].to_numpy(),
            "countries": keys.map(countries).fillna("").to_numpy(),
            "genres": keys.map(genres.groupby("movie", sort=False)["genre"].agg("|".join))
            .fillna("")
            .to_numpy(),
        }
    )


def _new_only(vertices: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """Vertices whose key the graph does not hold yet (existing names are left alone)."""
    return vertices[~vertices["key"].isin(pd.Index(existing["key"]))]
