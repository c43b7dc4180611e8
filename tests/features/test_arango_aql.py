"""The AQL the ArangoDB store sends, checked as text: values travel as bind variables only, the
bind variables match the text, collection names come from the schema, one-step lookups follow the
right edges. The k-hop query has its own file (test_arango_khop_aql.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from features.graph import arango_aql as aql
from features.graph import arango_khop_aql as khop_aql
from features.graph import arango_lookup_aql as lookup
from features.graph.schema import CONTENT_EDGES, DEFAULT_HOP_WEIGHTS, EdgeKind, VertexKind

# A value no query text may contain: it must travel as a bind variable.
HOSTILE = "x' RETURN 1 //\"`@@movies"
SENTINEL_RATING = 3.1415
BIND_RE = re.compile(r"(?<![\w@])(@@?)([A-Za-z_]\w*)")


def bind_names(query: str) -> set[str]:
    """Bind parameter names used in a query (``@x`` -> "x", ``@@c`` -> "@c")."""
    return {("@" + name if at == "@@" else name) for at, name in BIND_RE.findall(query)}


def all_queries() -> list[tuple[str, aql.AqlQuery]]:
    return [
        ("fetch_docs", aql.fetch_docs("movies", [HOSTILE])),
        ("existing_keys", aql.existing_keys("users", [HOSTILE])),
        ("write_docs", aql.write_docs("rated", [{"_key": HOSTILE}])),
        ("all_docs", aql.all_docs("tags")),
        ("one_doc", aql.one_doc("movies", HOSTILE)),
        ("counts", aql.counts()),
        ("all_keys", aql.all_keys("movies")),
        ("edge_ends", aql.edge_ends("directed")),
        ("user_movies", aql.user_movies(HOSTILE, min_rating=SENTINEL_RATING)),
        (
            "khop",
            khop_aql.khop_scores(
                HOSTILE, hops=3, weights=DEFAULT_HOP_WEIGHTS, min_rating=SENTINEL_RATING
            ),
        ),
        (
            "khop_limited",
            khop_aql.khop_scores(
                HOSTILE, hops=2, weights=DEFAULT_HOP_WEIGHTS, min_rating=SENTINEL_RATING, limit=9
            ),
        ),
        ("co_people", lookup.co_people(HOSTILE, min_shared=7)),
        ("neighbours", lookup.neighbours(VertexKind.MOVIE, HOSTILE, EdgeKind.TAGGED, "any")),
        ("user_affinity", lookup.user_affinity(HOSTILE)),
        ("explain", lookup.explain_paths(HOSTILE, HOSTILE + "2", min_rating=SENTINEL_RATING)),
    ]


@pytest.mark.parametrize(("name", "built"), all_queries(), ids=[n for n, _ in all_queries()])
def test_values_travel_as_bind_vars_only(name: str, built: aql.AqlQuery) -> None:
    query, bind = built
    assert HOSTILE not in query
    assert "x'" not in query
    assert str(SENTINEL_RATING) not in query
    # Every bind parameter the text names is supplied, and none is supplied unused (ArangoDB
    # rejects both).
    assert bind_names(query) == set(bind), name
    if name not in ("all_docs", "counts", "all_keys", "edge_ends"):
        assert _holds(bind, HOSTILE)


def _holds(value: object, needle: str) -> bool:
    """Whether ``needle`` occurs in a string anywhere inside ``value``."""
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(_holds(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, needle) for v in value)
    return False


def test_collection_names_in_text_come_from_the_schema() -> None:
    known = {k.value for k in VertexKind} | {k.value for k in EdgeKind}
    lists = 0
    for _, (query, bind) in all_queries():
        for key, value in bind.items():
            if key.startswith("@"):
                assert value in known
        # Traversal edge lists name only schema collections.
        for edges in re.findall(r"(?:ANY|OUTBOUND|INBOUND) \S+ ([a-z_, ]+)\n", query):
            assert {e.strip() for e in edges.split(",")} <= known
            lists += 1
    assert lists >= 6


def test_no_variable_shares_a_collection_name() -> None:
    collections = {k.value for k in VertexKind} | {k.value for k in EdgeKind}
    declared_re = re.compile(
        r"\b(?:LET|COLLECT|AGGREGATE)\s+(\w+)\s*=|,\s*(\w+)\s*=\s*(?:SUM|PARSE)|"
        r"\bFOR\s+(\w+)(?:,\s*(\w+))?(?:,\s*(\w+))?\s+IN\b"
    )
    for name, (query, _) in all_queries():
        declared = {v for match in declared_re.findall(query) for v in match if v}
        assert declared or name == "counts", name
        assert not declared & collections, name


def test_traversal_queries_declare_vertex_collections() -> None:
    for name, (query, _) in all_queries():
        if re.search(r"IN \d+\.\.\d+ ", query):
            assert query.startswith("WITH movies, people, genres, tags, users\n"), name


@pytest.mark.parametrize(
    ("direction", "keyword"), [("out", "OUTBOUND"), ("in", "INBOUND"), ("any", "ANY")]
)
def test_neighbours_direction_and_edge_bind(direction: str, keyword: str) -> None:
    query, bind = lookup.neighbours(VertexKind.PERSON, "tom_hanks", EdgeKind.ACTED_IN, direction)
    assert f"IN 1..1 {keyword} @start @@edge" in query
    assert bind == {"start": "people/tom_hanks", "@edge": "acted_in"}


@pytest.mark.parametrize("direction", ["both", "OUT", "", "outbound"])
def test_neighbours_rejects_unknown_direction(direction: str) -> None:
    message = f"neighbours: direction must be 'out', 'in' or 'any', got {direction!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        lookup.neighbours(VertexKind.MOVIE, "1", EdgeKind.TAGGED, direction)


def test_co_people_and_affinity_follow_people_edges() -> None:
    query, bind = lookup.co_people("1", min_shared=2)
    assert "INBOUND @movie acted_in, directed, wrote" in query
    assert "COUNT_DISTINCT(pid)" in query
    assert bind == {"movie": "movies/1", "min_shared": 2}
    query, bind = lookup.user_affinity("5")
    assert "INBOUND r.id acted_in, directed, wrote" in query
    assert "OUTBOUND r.id in_genre" in query
    assert "FILTER IS_NUMBER(e.rating)" in query
    assert bind == {"user": "users/5"}


def test_explain_joins_paths_at_the_shared_vertex() -> None:
    query, bind = lookup.explain_paths("5", "1", min_rating=4.0)
    assert "ANY @movie similar_to" in query
    assert f"ANY @movie {', '.join(k.value for k in CONTENT_EDGES)}" in query
    assert "FILTER e.rating >= @min_rating AND m._id != @movie" in query
    assert bind == {"user": "users/5", "movie": "movies/1", "min_rating": 4.0}


def test_user_movies_reads_the_edge_index_and_binds_a_float32_bound() -> None:
    query, bind = aql.user_movies("7", min_rating=4.1)
    assert "FILTER e._from == @user AND e.rating >= @min_rating" in query
    for kind in ("rated", "watched", "not_interested"):
        assert f"(FOR e IN {kind} FILTER e._from == @user RETURN e._to)" in query
    assert "UNION_DISTINCT(" in query
    # 4.1 as float32, widened exactly: a stored float32 4.1 passes, as in the embedded store.
    assert bind == {"user": "users/7", "min_rating": 4.099999904632568}
    assert bind["min_rating"] == float(np.float32(4.1)) != 4.1


def test_full_reads_return_only_what_is_needed() -> None:
    assert aql.edge_ends("in_genre") == (
        "FOR e IN @@collection RETURN [e._from, e._to]",
        {"@collection": "in_genre"},
    )
    assert aql.all_keys("movies") == (
        "FOR d IN @@collection RETURN d._key",
        {"@collection": "movies"},
    )
