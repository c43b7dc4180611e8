"""``marquee ingest ...`` and ``marquee graph stats`` through the real CLI, on a temporary home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marquee.cli import app
from tests.features.importers.conftest import DATA, LATEST, write_folder
from tests.features.importers.test_hetrec import HETREC
from tests.features.importers.test_recbole import KG_FULL, LINK_FULL, TINY

runner = CliRunner()


def _run(home: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["--home", str(home), *args], env=env)


def _stats(home: Path) -> dict[str, dict[str, int]]:
    result = _run(home, "graph", "stats", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(autouse=True)
def _no_arango(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    monkeypatch.delenv("MARQUEE_HETREC_DIR", raising=False)


@pytest.fixture
def latest(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "ml", LATEST)


@pytest.fixture
def hetrec(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "hetrec", {k: v.encode("latin-1") for k, v in HETREC.items()})


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ingest", "--help"], "movielens"),
        (["ingest", "movielens", "--help"], "bundled"),
        (["ingest", "hetrec", "--help"], "MARQUEE_HETREC_DIR"),
        (["ingest", "recbole", "--help"], "RecBole"),
        (["ingest", "synthetic", "--help"], "--ratings-per-user"),
        (["graph", "--help"], "stats"),
        (["graph", "stats", "--help"], "--json"),
    ],
)
def test_help(tmp_path: Path, args: list[str], says: str) -> None:
    result = _run(tmp_path, *args)
    assert result.exit_code == 0, result.output
    assert says in result.stdout


def test_ingest_movielens_then_stats(tmp_path: Path, latest: Path) -> None:
    home = tmp_path / "home"
    result = _run(home, "ingest", "movielens", str(latest))
    assert result.exit_code == 0, result.output
    assert "imported" in result.stdout
    stats = _stats(home)
    assert stats["vertices"]["movies"] == 4 and stats["vertices"]["users"] == 3
    assert stats["edges"]["rated"] == 6 and stats["edges"]["tagged"] == 3
    table = _run(home, "graph", "stats")
    assert table.exit_code == 0 and "rated" in table.stdout and "movies" in table.stdout

    again = _run(home, "ingest", "movielens", str(latest))
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stdout
    assert _stats(home) == stats


def test_bundled_sample_by_default(tmp_path: Path) -> None:
    result = _run(tmp_path / "home", "ingest", "movielens")
    assert result.exit_code == 0, result.output
    stats = _stats(tmp_path / "home")
    counts = (stats["vertices"]["users"], stats["vertices"]["movies"], stats["edges"]["rated"])
    assert counts == (610, 9742, 100836)


def test_bad_input_is_one_line_exit_2_and_stores_nothing(tmp_path: Path, latest: Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "ingest", "movielens", str(latest)).exit_code == 0
    before = _stats(home)
    write_folder(latest, {"ratings.csv": "userId,movieId,rating,timestamp\n1,1,4,1\n1,5,3,2\n"})
    result = _run(home, "ingest", "movielens", str(latest))
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message == (
        f"error: {latest / 'ratings.csv'} line 3: column 'movieId': 5 is not a known movie id "
        "(not in the movie file)"
    )
    assert "\n" not in message
    assert _stats(home) == before


def test_hetrec_needs_a_path(tmp_path: Path, latest: Path, hetrec: Path) -> None:
    home = tmp_path / "home"
    result = _run(home, "ingest", "hetrec")
    assert result.exit_code == 2
    assert "give the HetRec folder as PATH or set MARQUEE_HETREC_DIR" in result.stderr

    no_movies = _run(home, "ingest", "hetrec", str(hetrec))
    assert no_movies.exit_code == 2
    assert "import MovieLens before HetRec" in no_movies.stderr

    assert _run(home, "ingest", "movielens", str(latest)).exit_code == 0
    result = _run(home, "ingest", "hetrec", env={"MARQUEE_HETREC_DIR": str(hetrec)})
    assert result.exit_code == 0, result.output
    assert "2 of 4 movies agree" in result.stderr
    stats = _stats(home)
    assert stats["vertices"]["people"] == 2 and stats["edges"]["directed"] == 2
    # MovieLens again keeps what HetRec added.
    again = _run(home, "ingest", "movielens", str(latest))
    assert "nothing changed" in again.stdout
    assert _stats(home) == stats


def test_ingest_recbole(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _run(home, "ingest", "recbole", str(DATA / "recbole_tiny"))
    assert result.exit_code == 0, result.output
    assert "film.film.language: 2" in result.stdout  # mapped, per relation
    stats = _stats(home)
    assert stats["edges"]["directed"] == 3 and stats["edges"]["rated"] == 4


def test_ingest_recbole_lists_unmapped_relations(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "rb", {p.name: p.read_bytes() for p in TINY.iterdir()})
    write_folder(folder, {"tiny.kg": KG_FULL, "tiny.link": LINK_FULL})
    result = _run(tmp_path / "home", "ingest", "recbole", str(folder))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("Relations not mapped (left out, 4 triples):")
    assert lines[start + 1 : start + 4] == [
        "  film.film.rating: 2",
        "  film.film.edited_by: 1",
        "  film.film.estimated_budget: 1",
    ]


def test_ingest_repairs_are_summarised_and_strict_refuses(tmp_path: Path, latest: Path) -> None:
    write_folder(latest, {"links.csv": "movieId,imdbId,tmdbId\n1,tt0114709,862.0\n2,,x\n"})
    home = tmp_path / "home"
    strict = _run(home, "ingest", "movielens", str(latest), "--strict")
    assert strict.exit_code == 2
    assert strict.stderr.strip() == (
        f"error: {latest / 'links.csv'} line 2: column 'imdbId': 'tt0114709' is not an "
        "integer (strict: not repaired)"
    )
    assert _stats(home)["vertices"]["movies"] == 0  # nothing stored
    result = _run(home, "ingest", "movielens", str(latest))
    assert result.exit_code == 0, result.output
    assert "Repaired 3 values (--strict refuses them):" in result.stdout
    assert (
        "  links.csv column 'tmdbId': not an integer, left unknown: 1 (links.csv:3)"
        in result.stdout.splitlines()
    )


def test_ingest_recbole_missing_folder(tmp_path: Path) -> None:
    result = _run(tmp_path / "home", "ingest", "recbole", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'nope'}: not a folder (expected a RecBole data set folder)"
    )


def test_ingest_synthetic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["ingest", "synthetic", "--movies", "50", "--people", "20", "--users", "10"]
    result = _run(home, *args, "--ratings-per-user", "5", "--seed", "3")
    assert result.exit_code == 0, result.output
    stats = _stats(home)
    assert stats["vertices"]["movies"] == 50 and stats["vertices"]["users"] == 10
    again = _run(home, *args, "--ratings-per-user", "5", "--seed", "3")
    assert "nothing changed" in again.stdout
