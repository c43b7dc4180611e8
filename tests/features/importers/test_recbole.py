"""RecBole atomic files: mapped relations become edges, unknown ones are counted, not mixed in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import Explanation
from features.importers.errors import ImportFileError
from features.importers.freebase import RELATIONS, relation_of
from features.importers.recbole import load_recbole
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
    # Country and language become tag vertices (unnamed: Freebase ids are no names).
    assert _pairs(batch, EdgeKind.FROM_COUNTRY) == [("20", "m_09c7w0")]
    assert _pairs(batch, EdgeKind.IN_LANGUAGE) == [("10", "m_02h40lc"), ("30", "m_02h40lc")]
    assert set(batch.vertices[VertexKind.TAG]["name"]) == {""}
    assert report.unknown_relations == {}
    assert report.unlinked_triples == 1  # m.0zzzz is no linked item
    assert set(report.mapped) <= set(RELATIONS)


HEAD = "head_id:token\trelation_id:token\ttail_id:token\n"
# Every role in both directions, actors behind performance records (both ways round), a
# URI-wrapped and a reversed relation name, and relations with no mapping.
KG_FULL = HEAD + "".join(
    f"{h}\t{r}\t{t}\n"
    for h, r, t in [
        ("m.film10", "film.film.written_by", "m.writer1"),
        ("m.writer1", "film.writer.film", "m.film20"),
        ("m.film10", "film.film.produced_by", "m.prod1"),
        ("m.prod1", "film.producer.film", "m.film20"),
        ("m.film10", "film.film.executive_produced_by", "m.prod2"),
        ("m.film10", "film.film.cinematography", "m.dp1"),
        ("m.dp1", "film.cinematographer.film", "m.film30"),
        ("m.film10", "film.film.music", "m.comp1"),
        ("m.comp1", "film.music_contributor.film", "m.film20"),
        ("m.genre1", "film.film_genre.films_in_this_genre", "m.film10"),
        ("m.film10", "film.film.subjects", "m.subj1"),
        ("m.subj1", "film.film_subject.films", "m.film30"),
        ("m.film10", "film.film.production_companies", "m.co1"),
        ("m.co1", "film.production_company.films", "m.film20"),
        ("m.film20", "<http://rdf.freebase.com/ns/film.film.country>", "m.us"),
        ("m.english", "~film.film.language", "m.film30"),  # reversed: head is the language
        ("m.film10", "film.film.starring", "m.perf1"),  # performance record ...
        ("m.perf1", "film.performance.actor", "m.actor1"),  # ... and its actor
        ("m.actor1", "film.actor.film", "m.perf2"),  # the other way round
        ("m.perf2", "film.performance.film", "m.film20"),
        ("m.perf3", "film.performance.film", "m.film30"),
        ("m.perf3", "film.performance.actor", "m.actor2"),
        ("m.film30", "film.film.starring", "m.actor3"),  # flattened: the tail is the actor
        ("m.film10", "film.film.edited_by", "m.ed1"),
        ("m.film10", "film.film.rating", "m.pg"),
        ("m.film20", "film.film.rating", "m.pg"),
        ("m.film10", "film.film.estimated_budget", "m.money"),
    ]
)
LINK_FULL = "item_id:token\tentity_id:token\n10\tm.film10\n20\tm.film20\n30\tm.film30\n"


def test_every_relation_in_both_directions(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "rb", {p.name: p.read_bytes() for p in TINY.iterdir()})
    write_folder(folder, {"tiny.kg": KG_FULL, "tiny.link": LINK_FULL})
    batch, report = load_recbole(folder)
    assert _pairs(batch, EdgeKind.WROTE) == [("m_writer1", "10"), ("m_writer1", "20")]
    assert _pairs(batch, EdgeKind.PRODUCED) == [
        ("m_prod1", "10"),
        ("m_prod1", "20"),
        ("m_prod2", "10"),
    ]
    assert _pairs(batch, EdgeKind.SHOT) == [("m_dp1", "10"), ("m_dp1", "30")]
    assert _pairs(batch, EdgeKind.COMPOSED) == [("m_comp1", "10"), ("m_comp1", "20")]
    assert ("10", "m_genre1") in _pairs(batch, EdgeKind.IN_GENRE)
    assert _pairs(batch, EdgeKind.TAGGED) == [("10", "m_subj1"), ("30", "m_subj1")]
    assert _pairs(batch, EdgeKind.MADE_BY) == [("10", "m_co1"), ("20", "m_co1")]
    assert _pairs(batch, EdgeKind.FROM_COUNTRY) == [("20", "m_us")]
    assert _pairs(batch, EdgeKind.IN_LANGUAGE) == [("30", "m_english")]
    # Actors through performance records, from either end, and a flattened starring triple.
    assert _pairs(batch, EdgeKind.ACTED_IN) == [
        ("m_actor1", "10"),
        ("m_actor1", "20"),
        ("m_actor2", "30"),
        ("m_actor3", "30"),
    ]
    assert "m_perf1" not in set(batch.vertices[VertexKind.PERSON]["key"])
    assert report.performances == 2
    # What was not mapped is listed by name and count, most frequent first.
    assert report.unknown_relations == {
        "film.film.rating": 2,
        "film.film.edited_by": 1,
        "film.film.estimated_budget": 1,
    }
    # Freebase entities carry no names: none is named by its id.
    assert set(batch.vertices[VertexKind.PERSON]["name"]) == {""}


def test_relation_forms() -> None:
    assert relation_of("film.film.genre") == (EdgeKind.IN_GENRE, "head")
    assert relation_of("film.film_genre.films_in_this_genre") == (EdgeKind.IN_GENRE, "tail")
    assert relation_of("<http://rdf.freebase.com/ns/film.director.film>") == (
        EdgeKind.DIRECTED,
        "tail",
    )
    assert relation_of("film.film.directed_by_reverse") == (EdgeKind.DIRECTED, "tail")
    assert relation_of("~film.film.sequel") == (EdgeKind.SIMILAR_TO, "both")
    assert relation_of("film.film.rating") is None


def _explanation(edge: EdgeKind, via_name: str) -> Explanation:
    return Explanation(
        user="1",
        movie="20",
        movie_title="Heat",
        seed="10",
        seed_title="Toy Story",
        seed_rating=5.0,
        edge=edge,
        via_kind=VertexKind.PERSON,
        via_key="m_0bwh6",
        via_name=via_name,
    )


@pytest.mark.parametrize("name", ["", "m.0bwh6", "m_0bwh6", "g.11bc2x"])
def test_unnamed_entities_are_named_by_their_kind(name: str) -> None:
    text = _explanation(EdgeKind.COMPOSED, name).text
    assert text == "You rated Toy Story 5/5; Heat has the same composer."


def test_named_entities_are_shown() -> None:
    text = _explanation(EdgeKind.DIRECTED, "Michael Mann").text
    assert text == "You rated Toy Story 5/5; Heat has the same director, Michael Mann."


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
