"""Real-world dirt in optional columns: each case is repaired (or left unknown), counted with
its file:line, and refused with that file and line under --strict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.graph.batch import GraphBatch
from features.graph.schema import VertexKind
from features.importers.errors import ImportFileError
from features.importers.movielens import load_movielens
from features.importers.recbole import load_recbole
from features.importers.repairs import Repairs
from tests.features.importers.conftest import DATA, LATEST, write_folder

MOVIES_HEAD = "movieId,title,genres\n"
LINKS_HEAD = "movieId,imdbId,tmdbId\n"
RATINGS_HEAD = "userId,movieId,rating,timestamp\n"
TAGS_HEAD = "userId,movieId,tag,timestamp\n"
ITEM_HEAD = "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
INTER_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def movie(batch: GraphBatch, key: str, column: str) -> object:
    return batch.vertices[VertexKind.MOVIE].set_index("key").loc[key, column]


def rating_time(batch: GraphBatch, user: str, key: str) -> int:
    rated = batch.edges[next(k for k in batch.edges if k.value == "rated")]
    row = rated[(rated["src"] == user) & (rated["dst"] == key)]
    return int(row["timestamp"].iloc[0])


def tag_names(batch: GraphBatch) -> set[str]:
    return set(batch.vertices[VertexKind.TAG]["name"])


# (case, source, file, content, kind of repair, sample "file:line", check of the result)
Check = Callable[[GraphBatch], bool]
CASES: list[tuple[str, str, str, str | bytes, str, str, Check]] = [
    (
        "imdb id with its tt prefix",
        "latest",
        "links.csv",
        LINKS_HEAD + "1,tt0114709,862\n2,0112346,9087\n",
        "links.csv column 'imdbId': 'tt' prefix removed",
        "links.csv:2",
        lambda b: movie(b, "1", "imdb_id") == "tt0114709",
    ),
    (
        "tmdb id written as a float",
        "latest",
        "links.csv",
        LINKS_HEAD + "1,0114709,862.0\n2,0112346,9087\n",
        "links.csv column 'tmdbId': written with decimals, read as an integer",
        "links.csv:2",
        lambda b: movie(b, "1", "tmdb_id") == 862,
    ),
    (
        "tmdb id placeholder",
        "latest",
        "links.csv",
        LINKS_HEAD + "1,0114709,862\n2,0112346,n/a\n",
        "links.csv column 'tmdbId': not an integer, left unknown",
        "links.csv:3",
        lambda b: movie(b, "2", "tmdb_id") == 0,
    ),
    (
        "timestamp as an ISO date",
        "latest",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n1,2,4.0,2015-03-01 12:00:00\n",
        "ratings.csv column 'timestamp': a date, converted to epoch seconds",
        "ratings.csv:3",
        lambda b: rating_time(b, "1", "2") == 1425211200,
    ),
    (
        "timestamp in milliseconds",
        "latest",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703000\n",
        "ratings.csv column 'timestamp': milliseconds, converted to seconds",
        "ratings.csv:2",
        lambda b: rating_time(b, "1", "1") == 964982703,
    ),
    (
        "timestamp placeholder",
        "latest",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n1,2,4.0,N/A\n1,4,4.0,??\n",
        "ratings.csv column 'timestamp': not a timestamp, left unknown",
        "ratings.csv:3",
        lambda b: rating_time(b, "1", "2") == 0 and rating_time(b, "1", "4") == 0,
    ),
    (
        "timestamp out of range",
        "latest",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,99999999999999999999\n",
        "ratings.csv column 'timestamp': not a timestamp, left unknown",
        "ratings.csv:2",
        lambda b: rating_time(b, "1", "1") == 0,
    ),
    (
        "Latin-1 byte in a UTF-8 title",
        "latest",
        "movies.csv",
        (MOVIES_HEAD + "1,Toy Story (1995),Comedy\n2,Misérables (1995),Drama\n").encode("latin-1")
        + b"3,Y,Drama\n4,Heat (1995),Action\n",
        "movies.csv: not valid utf-8 text, read as Windows-1252",
        "movies.csv:3",
        lambda b: movie(b, "2", "title") == "Misérables",
    ),
    (
        "UTF-8 title read as Windows-1252 (mojibake)",
        "latest",
        "movies.csv",
        MOVIES_HEAD
        + '1,Toy Story (1995),Comedy\n2,"CitÃ© des enfants perdus, La (1995)",Drama\n'
        + "3,Y,Drama\n4,Heat (1995),Action\n",
        "movies.csv column 'title': UTF-8 read as Windows-1252 (mojibake), re-decoded",
        "movies.csv:3",
        lambda b: movie(b, "2", "title") == "La Cité des enfants perdus",
    ),
    (
        "HTML entity in a title",
        "latest",
        "movies.csv",
        MOVIES_HEAD
        + "1,Beauty &amp; the Beast (1991),Comedy\n2,Heat (1995),Action\n3,Y,Drama\n4,X,Drama\n",
        "movies.csv column 'title': HTML entities decoded",
        "movies.csv:2",
        lambda b: movie(b, "1", "title") == "Beauty & the Beast" and movie(b, "1", "year") == 1991,
    ),
    (
        "stray spaces in a title",
        "latest",
        "movies.csv",
        MOVIES_HEAD + "1,Toy  Story   (1995),Comedy\n2,Heat (1995),Action\n3,Y,Drama\n4,X,Drama\n",
        "movies.csv column 'title': stray spaces removed",
        "movies.csv:2",
        lambda b: movie(b, "1", "title") == "Toy Story" and movie(b, "1", "year") == 1995,
    ),
    (
        "title wrapped in quotes",
        "latest",
        "movies.csv",
        MOVIES_HEAD + "1,'Toy Story (1995)',Comedy\n2,Heat (1995),Action\n3,Y,Drama\n4,X,Drama\n",
        "movies.csv column 'title': surrounding quotes removed",
        "movies.csv:2",
        lambda b: movie(b, "1", "title") == "Toy Story",
    ),
    (
        "empty tag",
        "latest",
        "tags.csv",
        TAGS_HEAD + "2,1,Pixar,1445714994\n7,4,,1445714992\n",
        "tags.csv column 'tag': empty tag, row left out",
        "tags.csv:3",
        lambda b: tag_names(b) == {"Pixar"},
    ),
    (
        "RecBole year placeholder",
        "recbole",
        "tiny.item",
        ITEM_HEAD
        + "10\tToy Story\t1995\tAnimation\n20\tHeat\tunknwon\tAction\n30\tJumanji\t1995\tX\n",
        "tiny.item column 'release_year': not an integer, left unknown",
        "tiny.item:3",
        lambda b: movie(b, "20", "year") == 0 and movie(b, "10", "year") == 1995,
    ),
    (
        "RecBole year out of range",
        "recbole",
        "tiny.item",
        ITEM_HEAD
        + "10\tToy Story\t0195\tAnimation\n20\tHeat\t1995\tAction\n30\tJumanji\t9999\tX\n",
        "tiny.item column 'release_year': not a year in 1870..2100, left unknown",
        "tiny.item:2",
        lambda b: movie(b, "10", "year") == 0 and movie(b, "30", "year") == 0,
    ),
    (
        "RecBole timestamp as a date",
        "recbole",
        "tiny.inter",
        INTER_HEAD + "1\t10\t4.0\t2001-01-01\n1\t20\t5.0\t881250950\n2\t30\t1\t1\n",
        "tiny.inter column 'timestamp': a date, converted to epoch seconds",
        "tiny.inter:2",
        lambda b: rating_time(b, "1", "10") == 978307200,
    ),
]


def _folder(root: Path, source: str, name: str, content: str | bytes) -> Path:
    if source == "latest":
        folder = write_folder(root / "ml", LATEST)
    else:
        folder = write_folder(
            root / "rb", {p.name: p.read_bytes() for p in (DATA / "recbole_tiny").iterdir()}
        )
    return write_folder(folder, {name: content})


def _load(source: str, folder: Path, repairs: Repairs) -> GraphBatch:
    if source == "latest":
        return load_movielens(folder, repairs)
    return load_recbole(folder, repairs)[0]


@pytest.mark.parametrize(
    ("source", "name", "content", "kind", "sample", "check"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_dirt_is_repaired_and_counted(
    tmp_path: Path,
    source: str,
    name: str,
    content: str | bytes,
    kind: str,
    sample: str,
    check: Check,
) -> None:
    folder = _folder(tmp_path, source, name, content)
    repairs = Repairs()
    batch = _load(source, folder, repairs)
    assert kind in repairs.kinds, repairs.lines()
    assert repairs.kinds[kind].samples[0] == sample
    assert check(batch)


@pytest.mark.parametrize(
    ("source", "name", "content", "sample"),
    [(c[1], c[2], c[3], c[5]) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_strict_refuses_with_file_and_line(
    tmp_path: Path, source: str, name: str, content: str | bytes, sample: str
) -> None:
    folder = _folder(tmp_path, source, name, content)
    with pytest.raises(ImportFileError) as info:
        _load(source, folder, Repairs(strict=True))
    assert f"{info.value.path.name}:{info.value.line}" == sample
    assert str(info.value).endswith("(strict: not repaired)")


def test_summary_counts_and_three_samples(tmp_path: Path) -> None:
    rows = "".join(f"1,{m},4.0,{ts}\n" for m, ts in [(1, "x"), (2, "y"), (4, "z"), (3, "w")])
    folder = _folder(tmp_path, "latest", "ratings.csv", RATINGS_HEAD + rows)
    repairs = Repairs()
    load_movielens(folder, repairs)
    assert repairs.lines() == [
        "ratings.csv column 'timestamp': not a timestamp, left unknown: 4 "
        "(ratings.csv:2, ratings.csv:3, ratings.csv:4, ...)"
    ]


def test_clean_data_needs_no_repairs(tmp_path: Path) -> None:
    repairs = Repairs()
    batch = load_movielens(write_folder(tmp_path / "ml", LATEST), repairs)
    assert repairs.kinds == {}
    assert movie(batch, "2", "title") == "The American President"
    assert isinstance(batch.vertices[VertexKind.MOVIE], pd.DataFrame)


def test_recbole_titles_put_the_article_first(tmp_path: Path) -> None:
    item = (
        ITEM_HEAD + "10\tAmerican President, The\t1995\tDrama\n20\tHeat\t1995\tX\n30\tJ\t1995\tX\n"
    )
    batch, _ = load_recbole(_folder(tmp_path, "recbole", "tiny.item", item))
    assert movie(batch, "10", "title") == "The American President"
    assert movie(batch, "10", "year") == 1995
