"""HetRec side data joins only movies whose IMDb ids agree; checked on tiny files and real data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from features.datasets import bundled_movielens
from features.graph.batch import GraphDataError
from features.graph.schema import EdgeKind, VertexKind
from features.importers.hetrec import load_hetrec
from features.importers.merge import BatchFrames
from features.importers.movielens import load_movielens
from tests.features.importers.conftest import shared_data, write_folder

# Against conftest.LATEST: movie 1 and 4 agree, 2 has another IMDb id, 5 is not in the graph.
HETREC: dict[str, str] = {
    "movies.dat": "id\ttitle\timdbID\tspanishTitle\timdbPictureURL\tyear\r\n"
    "1\tToy story\t0114709\tToy story\thttp://img/1.jpg\t1995\r\n"
    "2\tAmerican President\t0047437\tEl presidente\thttp://img/2.jpg\t1995\r\n"
    "4\tHeat\t0113277\tHeat\t\t1995\r\n"
    "5\tOther\t0999999\tOtra\thttp://img/5.jpg\t2001\r\n",
    "movie_directors.dat": "movieID\tdirectorID\tdirectorName\r\n"
    "1\tjohn_lasseter\tJohn Lasseter\r\n"
    "2\tbilly_wilder\tBilly Wilder\r\n"
    "4\tmichael_mann\tMichael Mann\r\n"
    "5\tsomeone\tSomeone\r\n",
    "movie_genres.dat": "movieID\tgenre\r\n1\tAdventure\r\n1\tFantasy\r\n2\tDrama\r\n4\tAction\r\n",
    "movie_countries.dat": "1\tUSA\r\n2\tUK\r\n4\tUSA\r\n4\tCanada\r\n5\tFrance\r\n",
    "tags.dat": "1\tpixar\r\n2\theist\r\n3\tCité classic\r\n",
    "movie_tags.dat": "1\t1\t3\r\n4\t2\t1\r\n4\t3\t2\r\n2\t3\t5\r\n",
}


@pytest.fixture
def hetrec_dir(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "hetrec", {k: v.encode("latin-1") for k, v in HETREC.items()})


def test_joins_only_agreeing_movies(latest_dir: Path, hetrec_dir: Path) -> None:
    ml = load_movielens(latest_dir)
    batch, report = load_hetrec(hetrec_dir, BatchFrames(ml))
    assert (report.hetrec_movies, report.agreeing, report.imdb_mismatch, report.not_in_graph) == (
        4,
        2,
        1,
        1,
    )
    directed = batch.edges[EdgeKind.DIRECTED]
    assert sorted(zip(directed["src"], directed["dst"], strict=True)) == [
        ("john_lasseter", "1"),
        ("michael_mann", "4"),
    ]
    people = batch.vertices[VertexKind.PERSON].set_index("key")["name"].to_dict()
    assert people == {"john_lasseter": "John Lasseter", "michael_mann": "Michael Mann"}

    movies = batch.vertices[VertexKind.MOVIE].set_index("key")
    assert sorted(movies.index) == ["1", "4"]
    assert movies.loc["1", "title"] == "Toy Story"  # other attributes carried over
    assert movies.loc["1", "tmdb_id"] == 862
    assert movies.loc["1", "poster_url"] == "http://img/1.jpg"
    assert movies.loc["4", "poster_url"] == ""
    assert movies.loc["4", "countries"] == "USA|Canada"
    assert movies.loc["1", "genres"] == "Adventure|Animation|Children|Fantasy"

    in_genre = batch.edges[EdgeKind.IN_GENRE]
    assert sorted(zip(in_genre["src"], in_genre["dst"], strict=True)) == [
        ("1", "adventure"),
        ("1", "fantasy"),
        ("4", "action"),
    ]
    # Only genres and tags the graph lacks become vertices; known ones keep their names.
    assert batch.vertices[VertexKind.GENRE]["key"].tolist() == ["fantasy"]
    assert batch.vertices[VertexKind.TAG].set_index("key")["name"].to_dict() == {
        "cite_classic": "Cité classic"
    }
    tagged = batch.edges[EdgeKind.TAGGED].set_index(["src", "dst"])["weight"].to_dict()
    # MovieLens counted pixar twice on movie 1; HetRec says 3: the larger wins.
    assert tagged == {("1", "pixar"): 3.0, ("4", "heist"): 1.0, ("4", "cite_classic"): 2.0}


def test_needs_movies_in_graph(hetrec_dir: Path) -> None:
    from features.graph.batch import GraphBatch

    with pytest.raises(GraphDataError, match="import MovieLens before HetRec"):
        load_hetrec(hetrec_dir, BatchFrames(GraphBatch()))


def _expected_directed(hetrec: Path, movielens: Path) -> set[str]:
    """Movies with a director where links.csv's imdbId equals HetRec's imdbID (csv module)."""
    with (movielens / "links.csv").open() as fh:
        imdb = {r["movieId"]: int(r["imdbId"]) for r in csv.DictReader(fh)}
    with (hetrec / "movies.dat").open(encoding="latin-1", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    agree = {r["id"] for r in rows if imdb.get(r["id"]) == int(r["imdbID"])}
    with (hetrec / "movie_directors.dat").open(encoding="latin-1", newline="") as fh:
        directed = {r["movieID"] for r in csv.DictReader(fh, delimiter="\t")}
    return agree & directed


@pytest.mark.skipif(shared_data() is None, reason="shared real data not present")
def test_real_hetrec_on_bundled_movielens() -> None:
    data = shared_data()
    assert data is not None
    folder = data / "hetrec2011-movielens-2k"
    batch, report = load_hetrec(folder, BatchFrames(load_movielens(bundled_movielens())))
    expected = _expected_directed(folder, bundled_movielens())
    directed_movies = set(batch.edges[EdgeKind.DIRECTED]["dst"])
    assert directed_movies == expected
    # shared/data/README.md: 6,050 agreeing movies, 6,044 with a director.
    assert report.agreeing == 6050
    assert len(directed_movies) == report.directed_movies == 6044
