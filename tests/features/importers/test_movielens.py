"""MovieLens importer: the bundled sample's counts, and each format's fields on tiny files."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from features.datasets import bundled_movielens
from features.graph.schema import EdgeKind, VertexKind
from features.importers.errors import ImportFileError
from features.importers.movielens import detect_format, load_movielens
from tests.features.importers.conftest import write_folder


@pytest.fixture(scope="module")
def bundled_batch():
    return load_movielens(bundled_movielens())


def test_bundled_sample_counts_match_readme_and_files(bundled_batch) -> None:
    folder = bundled_movielens()
    with (folder / "ratings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    with (folder / "movies.csv").open() as fh:
        movie_rows = list(csv.DictReader(fh))
    # GroupLens' README: 100836 ratings, 610 users, 9742 movies.
    assert len(bundled_batch.vertices[VertexKind.USER]) == 610 == len({r["userId"] for r in rows})
    assert len(bundled_batch.vertices[VertexKind.MOVIE]) == 9742 == len(movie_rows)
    assert len(bundled_batch.edges[EdgeKind.RATED]) == 100836 == len(rows)


def test_bundled_sample_integrity() -> None:
    import hashlib

    folder = bundled_movielens()
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_latest_fields(latest_dir: Path) -> None:
    batch = load_movielens(latest_dir)
    movies = batch.vertices[VertexKind.MOVIE].set_index("key")
    assert movies.loc["1", "title"] == "Toy Story"
    assert movies.loc["1", "year"] == 1995
    assert movies.loc["1", "imdb_id"] == "tt0114709"
    assert movies.loc["1", "tmdb_id"] == 862
    assert movies.loc["2", "title"] == "The American President"
    assert movies.loc["3", "year"] == 0 and movies.loc["3", "tmdb_id"] == 0
    assert movies.loc["3", "genres"] == ""
    assert movies.loc["4", "genres"] == "Action|Crime|Thriller"

    in_genre = batch.edges[EdgeKind.IN_GENRE]
    assert set(in_genre.loc[in_genre["src"] == "1", "dst"]) == {
        "adventure",
        "animation",
        "children",
    }
    assert "3" not in set(in_genre["src"])  # "(no genres listed)" is no genre
    genres = batch.vertices[VertexKind.GENRE].set_index("key")["name"]
    assert genres["children"] == "Children"
    assert len(genres) == 9  # distinct genres of movies 1, 2 and 4

    assert sorted(batch.vertices[VertexKind.USER]["key"]) == ["1", "2", "7"]
    rated = batch.edges[EdgeKind.RATED].set_index(["src", "dst"])
    assert len(rated) == 6
    assert rated.loc[("1", "2"), "rating"] == pytest.approx(0.5)
    assert rated.loc[("7", "4"), "timestamp"] == 964982400

    tagged = batch.edges[EdgeKind.TAGGED].set_index(["src", "dst"])["weight"]
    assert tagged.to_dict() == {("1", "pixar"): 2.0, ("4", "al_pacino"): 1.0, ("4", "heist"): 1.0}
    tags = batch.vertices[VertexKind.TAG].set_index("key")["name"]
    assert tags["pixar"] == "Pixar"  # first spelling met


def test_without_links_and_tags(latest_dir: Path) -> None:
    (latest_dir / "links.csv").unlink()
    (latest_dir / "tags.csv").unlink()
    batch = load_movielens(latest_dir)
    assert set(batch.vertices[VertexKind.MOVIE]["imdb_id"]) == {""}
    assert VertexKind.TAG not in batch.vertices


ML1M = {
    "movies.dat": "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
    "3::Misérables, Les (1995)::Drama|Musical\n",
    "ratings.dat": "1::1::5::978300760\n1::3::3::978302109\n2::2::4::978301968\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
}


def test_ml1m(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {k: v.encode("latin-1") for k, v in ML1M.items()}
    folder = write_folder(tmp_path / "ml-1m", files)
    assert detect_format(folder) == "1m"
    batch = load_movielens(folder)
    movies = batch.vertices[VertexKind.MOVIE].set_index("key")
    assert movies.loc["3", "title"] == "Les Misérables"  # Latin-1 decoded
    assert movies.loc["1", "genres"] == "Animation|Children's|Comedy"
    # users.dat lists user 3, who rated nothing: still a user.
    assert sorted(batch.vertices[VertexKind.USER]["key"]) == ["1", "2", "3"]
    rated = batch.edges[EdgeKind.RATED]
    assert len(rated) == 3 and rated["rating"].tolist() == [5.0, 3.0, 4.0]


GENRES_100K = "unknown|0\nAction|1\nAdventure|2\nComedy|3\n"


def _item(mid: int, title: str, flags: str) -> str:
    return f"{mid}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|{flags}\n"


def test_ml100k(tmp_path: Path) -> None:
    items = _item(1, "Toy Story (1995)", "0|0|1|1") + _item(2, "GoldenEye", "0|1|1|0")
    items += _item(3, "Unknown thing (1996)", "1|0|0|0")
    folder = write_folder(
        tmp_path / "ml-100k",
        {
            "u.genre": GENRES_100K + "\n",
            "u.item": items.encode("latin-1"),
            "u.data": "196\t1\t3\t881250949\n186\t2\t5\t891717742\n196\t3\t1\t881250950\n",
        },
    )
    assert detect_format(folder) == "100k"
    batch = load_movielens(folder)
    movies = batch.vertices[VertexKind.MOVIE].set_index("key")
    assert movies.loc["1", "genres"] == "Adventure|Comedy"
    assert movies.loc["2", "year"] == 1995  # from the release date when the title has none
    assert movies.loc["3", "genres"] == ""  # "unknown" is no genre
    assert len(batch.edges[EdgeKind.RATED]) == 3


def test_detect_format_rejects_other_folders(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no MovieLens files found"):
        detect_format(tmp_path)
    with pytest.raises(ImportFileError, match="not a folder"):
        detect_format(tmp_path / "absent")


def test_batch_frames_have_schema_dtypes(latest_dir: Path) -> None:
    batch = load_movielens(latest_dir)
    rated = batch.edges[EdgeKind.RATED]
    assert rated["rating"].dtype == "float32" and rated["timestamp"].dtype == "int64"
    assert pd.api.types.is_integer_dtype(batch.vertices[VertexKind.MOVIE]["year"])
