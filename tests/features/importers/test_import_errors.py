"""Structurally bad input files, each with the exact error it must raise (file, line, what).
Bad values in optional columns are repaired instead: see test_repairs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.importers.errors import ImportFileError
from features.importers.hetrec import load_hetrec
from features.importers.merge import BatchFrames
from features.importers.movielens import load_movielens
from features.importers.recbole import load_recbole
from tests.features.importers.conftest import DATA, write_folder
from tests.features.importers.test_hetrec import HETREC
from tests.features.importers.test_movielens import GENRES_100K, ML1M

RATINGS_HEAD = "userId,movieId,rating,timestamp\n"

# (case id, file to replace, its new content, file named in the error, line, message)
LATEST_CASES = [
    ("missing file", "movies.csv", None, "movies.csv", None, "file not found"),
    (
        "semicolons",
        "ratings.csv",
        "userId;movieId;rating;timestamp\n1;1;4.0;964982703\n",
        "ratings.csv",
        1,
        "missing columns ['userId', 'movieId', 'rating', 'timestamp']; found "
        "['userId;movieId;rating;timestamp'] (the header is separated by ';', expected ',')",
    ),
    (
        "unknown column",
        "movies.csv",
        "movieId,title,genres,year\n1,Toy Story (1995),Comedy,1995\n",
        "movies.csv",
        1,
        "unknown columns ['year']; expected ['movieId', 'title', 'genres']",
    ),
    (
        "missing column",
        "links.csv",
        "movieId,imdbId\n1,0114709\n",
        "links.csv",
        1,
        "missing columns ['tmdbId']; found ['movieId', 'imdbId']",
    ),
    (
        "rating not a number",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n1,2,four,964981247\n",
        "ratings.csv",
        3,
        "column 'rating': 'four' is not a number",
    ),
    (
        "rating too high",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n2,1,4.5,1\n2,4,5.5,964983815\n",
        "ratings.csv",
        4,
        "column 'rating': '5.5' is outside the range 0.5..5",
    ),
    (
        "rating zero",
        "ratings.csv",
        RATINGS_HEAD + "1,1,0,964982703\n",
        "ratings.csv",
        2,
        "column 'rating': '0' is outside the range 0.5..5",
    ),
    (
        "rating empty",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n1,2,,964981247\n",
        "ratings.csv",
        3,
        "column 'rating' is empty",
    ),
    (
        "rating for an unknown movie",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n\n1,99,3.0,964981247\n",
        "ratings.csv",
        4,  # the blank line 3 still counts
        "column 'movieId': 99 is not a known movie id (not in the movie file)",
    ),
    (
        "user id not an integer",
        "ratings.csv",
        RATINGS_HEAD + "u1,1,4.0,964982703\n",
        "ratings.csv",
        2,
        "column 'userId': 'u1' is not an integer",
    ),
    (
        "movie id with decimals",
        "ratings.csv",
        RATINGS_HEAD + "1,1.0,4.0,964982703\n",
        "ratings.csv",
        2,
        "column 'movieId': '1.0' is not an integer",
    ),
    (
        "too many fields",
        "ratings.csv",
        RATINGS_HEAD + "1,1,4.0,964982703\n1,2,4.0,964982703,x\n",
        "ratings.csv",
        3,
        "expected 4 fields separated by ',', found 5",
    ),
    (
        "tag for an unknown movie",
        "tags.csv",
        "userId,movieId,tag,timestamp\n2,1,funny,1445714994\n2,42,funny,1445714994\n",
        "tags.csv",
        3,
        "column 'movieId': 42 is not a known movie id (not in movies.csv)",
    ),
    (
        "duplicate movie id",
        "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat (1995),Action\n1,Again,Drama\n",
        "movies.csv",
        4,
        "column 'movieId': 1 appears twice",
    ),
]


def _expected(folder: Path, name: str, line: int | None, message: str) -> str:
    where = f"{folder / name} line {line}" if line is not None else str(folder / name)
    return f"{where}: {message}"


@pytest.mark.parametrize(
    ("target", "content", "named", "line", "message"),
    [case[1:] for case in LATEST_CASES],
    ids=[case[0] for case in LATEST_CASES],
)
def test_bad_movielens_latest(
    latest_dir: Path,
    target: str,
    content: str | bytes | None,
    named: str,
    line: int | None,
    message: str,
) -> None:
    if content is None:
        (latest_dir / target).unlink()
    else:
        write_folder(latest_dir, {target: content})
    with pytest.raises(ImportFileError) as info:
        load_movielens(latest_dir)
    assert str(info.value) == _expected(latest_dir, named, line, message)
    assert info.value.line == line


OTHER_FORMAT_CASES = [
    (
        "1m ratings with tabs",
        "1m",
        "ratings.dat",
        "1\t1\t5\t978300760\n",
        2,
        1,
        "expected 4 fields separated by '::', found 1 (it looks separated by tab)",
    ),
    (
        "1m rating for an unknown movie",
        "1m",
        "ratings.dat",
        "1::1::5::978300760\n1::8::3::978302109\n",
        2,
        2,
        "column 'MovieID': 8 is not a known movie id (not in the movie file)",
    ),
    (
        "100k rating out of range",
        "100k",
        "u.data",
        "196\t1\t3\t881250949\n186\t1\t6\t891717742\n",
        2,
        2,
        "column 'rating': '6' is outside the range 0.5..5",
    ),
    (
        "100k genre flag not 0/1",
        "100k",
        "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|2|1\n",
        1,
        1,
        "column 'Adventure': genre flags must be 0 or 1",
    ),
]


def _other_folder(root: Path, fmt: str) -> Path:
    if fmt == "1m":
        return write_folder(root, dict(ML1M))
    return write_folder(
        root,
        {
            "u.genre": GENRES_100K,
            "u.item": "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1|1\n",
            "u.data": "196\t1\t3\t881250949\n",
        },
    )


@pytest.mark.parametrize(
    ("fmt", "target", "content", "_unused", "line", "message"),
    [case[1:] for case in OTHER_FORMAT_CASES],
    ids=[case[0] for case in OTHER_FORMAT_CASES],
)
def test_bad_movielens_other_formats(
    tmp_path: Path, fmt: str, target: str, content: str, _unused: int, line: int, message: str
) -> None:
    folder = _other_folder(tmp_path / fmt, fmt)
    write_folder(folder, {target: content})
    with pytest.raises(ImportFileError) as info:
        load_movielens(folder)
    assert str(info.value) == _expected(folder, target, line, message)


HETREC_CASES = [
    (
        "director for an unknown movie",
        "movie_directors.dat",
        "movieID\tdirectorID\tdirectorName\r\n1\tjohn_lasseter\tJohn Lasseter\r\n77\tx\tX\r\n",
        3,
        "column 'movieID': 77 is not a known movie id (not in movies.dat)",
    ),
    (
        "tag id not in tags.dat",
        "movie_tags.dat",
        "1\t1\t3\r\n1\t500\t1\r\n",
        2,
        "column 'tagID': 500 is not a known tag id (not in tags.dat)",
    ),
    (
        "negative tag weight",
        "movie_tags.dat",
        "1\t1\t-3\r\n",
        1,
        "column 'tagWeight': '-3' is outside the range 0..inf",
    ),
    (
        "movies.dat without imdbID",
        "movies.dat",
        "id\ttitle\timdbPictureURL\r\n1\tToy story\thttp://x\r\n",
        1,
        "missing columns ['imdbID']; found ['id', 'title', 'imdbPictureURL']",
    ),
    (
        "countries with commas",
        "movie_countries.dat",
        "1,USA\r\n",
        1,
        "expected 2 fields separated by tab, found 1 (it looks separated by ',')",
    ),
]


@pytest.mark.parametrize(
    ("target", "content", "line", "message"),
    [case[1:] for case in HETREC_CASES],
    ids=[case[0] for case in HETREC_CASES],
)
def test_bad_hetrec(
    tmp_path: Path, latest_dir: Path, target: str, content: str, line: int, message: str
) -> None:
    folder = write_folder(tmp_path / "hetrec", {k: v.encode("latin-1") for k, v in HETREC.items()})
    write_folder(folder, {target: content.encode("latin-1")})
    with pytest.raises(ImportFileError) as info:
        load_hetrec(folder, BatchFrames(load_movielens(latest_dir)))
    assert str(info.value) == _expected(folder, target, line, message)


RECBOLE_CASES = [
    (
        "rating out of range",
        "tiny.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t7\t1\n",
        2,
        "column 'rating': '7' is outside the range 0.5..5",
    ),
    (
        "interaction with an unknown item",
        "tiny.inter",
        "user_id:token\titem_id:token\trating:float\n1\t10\t4\n1\t11\t4\n",
        3,
        "column 'item_id': 11 is not a known item (not in tiny.item)",
    ),
    (
        "space-separated header",
        "tiny.inter",
        "user_id:token item_id:token\n1 10\n",
        1,
        "missing columns ['item_id']; found ['user_id:token item_id:token'] "
        "(fields must be tab-separated)",
    ),
    (
        "link to an unknown item",
        "tiny.link",
        "item_id:token\tentity_id:token\n10\tm.0dyb1\n99\tm.0x\n",
        3,
        "column 'item_id': 99 is not a known item",
    ),
    (
        "kg without relation column",
        "tiny.kg",
        "head_id:token\ttail_id:token\nm.0dyb1\tm.01_f_5\n",
        1,
        "missing columns ['relation_id']; found ['head_id:token', 'tail_id:token']",
    ),
]


@pytest.mark.parametrize(
    ("target", "content", "line", "message"),
    [case[1:] for case in RECBOLE_CASES],
    ids=[case[0] for case in RECBOLE_CASES],
)
def test_bad_recbole(tmp_path: Path, target: str, content: str, line: int, message: str) -> None:
    src = DATA / "recbole_tiny"
    folder = write_folder(tmp_path / "rb", {p.name: p.read_bytes() for p in src.iterdir()})
    write_folder(folder, {target: content})
    with pytest.raises(ImportFileError) as info:
        load_recbole(folder)
    assert str(info.value) == _expected(folder, target, line, message)


def test_recbole_needs_inter(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError) as info:
        load_recbole(tmp_path)
    assert str(info.value) == f"{tmp_path}: no .inter file (not a RecBole atomic data set)"
