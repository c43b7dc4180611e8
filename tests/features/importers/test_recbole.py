"""RecBole atomic files: mapped relations become edges, unknown ones are counted, not mixed in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from features.graph.schema import EdgeKind, VertexKind
from features.importers.errors import ImportFileError
from features.importers.recbole import RELATIONS, load_recbole
from tests.features.importers.conftest import DATA, write_folder

TINY = DATA / "recbole_tiny"


def _pairs(batch, kind: EdgeKind) -> list[tuple[str, str]]:
    frame = batch.edges[kind]
    return sorted(zip(frame["src"], frame["dst"], strict=True))


def test_tiny_dataset(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="features.importers.recbole"):
        batch, report = load_recbole(TINY)
    assert (report.interactions, report.items) == (4, 3)
    movies = batch.vertices[VertexKind.MOVIE].set_index("key")
    assert movies.loc["20", "title"] == "Heat"
    assert movies.loc["20", "year"] == 1995
    assert movies.loc["20", "genres"] == "Action|Crime|Thriller"
    assert _pairs(batch, EdgeKind.RATED) == [("1", "10"), ("1", "20"), ("2", "10"), ("2", "30")]
    # directed_by (film at head) and director.film (film at tail) both give person -> movie.
    assert _pairs(batch, EdgeKind.DIRECTED) == [
        ("m_01_f_5", "10"),
        ("m_01_f_5", "30"),
        ("m_0bwh6", "20"),
    ]
    assert _pairs(batch, EdgeKind.ACTED_IN) == [("m_0f4vbz", "20")]
    assert ("10", "m_0hcr") in _pairs(batch, EdgeKind.IN_GENRE)
    assert _pairs(batch, EdgeKind.SIMILAR_TO) == [("10", "30")]
    people = set(batch.vertices[VertexKind.PERSON]["key"])
    assert people == {"m_01_f_5", "m_0bwh6", "m_0f4vbz"}
    # Unmapped relations are reported per relation and logged; none of them became an edge.
    assert report.unknown_relations == {"film.film.country": 1, "film.film.language": 2}
    assert report.unlinked_triples == 1  # m.0zzzz is no linked item
    assert "film.film.language" in caplog.text
    assert set(report.mapped) <= set(RELATIONS)


def test_inter_without_rating_gives_watched(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "implicit",
        {"x.inter": "user_id:token\titem_id:token\ttimestamp:float\nu1\ti9\t5\nu2\ti9\t6\n"},
    )
    batch, report = load_recbole(folder)
    assert EdgeKind.RATED not in batch.edges
    assert _pairs(batch, EdgeKind.WATCHED) == [("u1", "i9"), ("u2", "i9")]
    assert report.mapped == {}


def test_kg_without_link_is_an_error(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "rb", {p.name: p.read_bytes() for p in TINY.iterdir()})
    (folder / "tiny.link").unlink()
    with pytest.raises(ImportFileError, match=r"tiny\.kg: a \.kg file needs a \.link file"):
        load_recbole(folder)
