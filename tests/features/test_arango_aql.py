"""The AQL the ArangoDB store sends, checked as text: bind variables only, hop structure, keys."""

from __future__ import annotations

import re
from typing import Any

import pytest

from features.graph import arango_aql as aql
from features.graph.batch import GraphDataError
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EdgeKind,
    VertexKind,
    slug,
)

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
        (
            "khop",
            aql.khop_scores(
                HOSTILE, hops=3, weights=DEFAULT_HOP_WEIGHTS, min_rating=SENTINEL_RATING
            ),
        ),
        ("co_people", aql.co_people(HOSTILE, min_shared=7)),
        ("neighbours", aql.neighbours(VertexKind.MOVIE, HOSTILE, EdgeKind.TAGGED, "any")),
        ("user_affinity", aql.user_affinity(HOSTILE)),
        ("explain", aql.explain_paths(HOSTILE, HOSTILE + "2", min_rating=SENTINEL_RATING)),
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
    if name not in ("all_docs", "counts"):
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
    assert lists >= 10


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


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_khop_has_one_subquery_per_hop_each_one_step_deep(hops: int) -> None:
    query, bind = aql.khop_scores("7", hops=hops, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)
    defined = re.findall(r"^LET (x\d+) = \(", query, flags=re.M)
    assert defined == [f"x{n}" for n in range(0, hops + 1)]
    # Hop n reads only x(n-1).
    for n in range(1, hops + 1):
        body = query.split(f"LET x{n} = (", 1)[1].split("\nLET ", 1)[0]
        assert f"IN x{n - 1}\n" in body
        assert f"x{n + 1}" not in body
    depths = re.findall(r"IN (\d+)\.\.(\d+) ", query)
    assert depths and set(depths) == {("1", "1")}
    assert f"FLATTEN([{', '.join(f'x{n}' for n in range(1, hops + 1))}])" in query
    assert bind["user"] == "users/7"
    assert bind["min_rating"] == 4.0


@pytest.mark.parametrize(
    ("hops", "message"),
    [
        (0, "khop_scores: hops must be 1, 2 or 3, got 0"),
        (4, "khop_scores: hops must be 1, 2 or 3, got 4"),
        (-1, "khop_scores: hops must be 1, 2 or 3, got -1"),
        (True, "khop_scores: hops must be 1, 2 or 3, got True"),
        (2.0, "khop_scores: hops must be 1, 2 or 3, got 2.0"),
    ],
)
def test_khop_rejects_hops_outside_1_to_3(hops: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        aql.khop_scores("7", hops=hops, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({EdgeKind.RATED: 1.0}, "khop weights: edge kind 'rated' cannot be followed"),
        ({EdgeKind.WATCHED: 1.0}, "khop weights: edge kind 'watched' cannot be followed"),
        ({EdgeKind.TAGGED: float("nan")}, "khop weights: weight of 'tagged' is not finite"),
        ({EdgeKind.DIRECTED: float("inf")}, "khop weights: weight of 'directed' is not finite"),
    ],
)
def test_khop_rejects_bad_weights(weights: dict[EdgeKind, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        aql.khop_scores("7", hops=2, weights=weights, min_rating=4.0)


def _traversed(query: str) -> set[str]:
    out: set[str] = set()
    for edges in re.findall(r"IN 1\.\.1 ANY \S+ ([a-z_, ]+)\n", query):
        out |= {e.strip() for e in edges.split(",")}
    return out


@pytest.mark.parametrize(
    "weights",
    [
        {EdgeKind.DIRECTED: 1.0},
        {EdgeKind.SIMILAR_TO: 2.0},
        {EdgeKind.IN_GENRE: 0.05, EdgeKind.TAGGED: 0.3, EdgeKind.ACTED_IN: 0.0},
        dict(DEFAULT_HOP_WEIGHTS),
    ],
    ids=["directed", "similar", "genre-tag-zero-actor", "defaults"],
)
def test_khop_follows_exactly_the_weighted_edge_kinds(weights: dict[EdgeKind, float]) -> None:
    query, bind = aql.khop_scores("7", hops=2, weights=weights, min_rating=4.0)
    followed = {k.value for k, w in weights.items() if w != 0}
    assert _traversed(query) == followed
    content = {k.value: w for k, w in weights.items() if k in CONTENT_EDGES and w != 0}
    assert bind.get("w", {}) == content
    if EdgeKind.SIMILAR_TO in followed:
        assert bind["w_similar"] == weights[EdgeKind.SIMILAR_TO]
    else:
        assert "w_similar" not in bind
    # The seen set covers every user edge kind, whatever the weights.
    assert "OUTBOUND @user rated, watched, not_interested" in query


def test_khop_content_hop_excludes_the_movie_itself() -> None:
    query, _ = aql.khop_scores("7", hops=1, weights={EdgeKind.DIRECTED: 1.0}, min_rating=4.0)
    # Same edge kind on both sides of the shared vertex, and x_j taken out of its own sum.
    assert "FILTER PARSE_IDENTIFIER(e._id).collection == m.c" in query
    assert "LET d = m.t - NOT_NULL(xw1[v._id], 0)" in query
    sim, _ = aql.khop_scores("7", hops=1, weights={EdgeKind.SIMILAR_TO: 1.0}, min_rating=4.0)
    assert "FILTER v._id != x.id" in sim


@pytest.mark.parametrize(
    ("direction", "keyword"), [("out", "OUTBOUND"), ("in", "INBOUND"), ("any", "ANY")]
)
def test_neighbours_direction_and_edge_bind(direction: str, keyword: str) -> None:
    query, bind = aql.neighbours(VertexKind.PERSON, "tom_hanks", EdgeKind.ACTED_IN, direction)
    assert f"IN 1..1 {keyword} @start @@edge" in query
    assert bind == {"start": "people/tom_hanks", "@edge": "acted_in"}


@pytest.mark.parametrize("direction", ["both", "OUT", "", "outbound"])
def test_neighbours_rejects_unknown_direction(direction: str) -> None:
    message = f"neighbours: direction must be 'out', 'in' or 'any', got {direction!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        aql.neighbours(VertexKind.MOVIE, "1", EdgeKind.TAGGED, direction)


def test_co_people_and_affinity_follow_people_edges() -> None:
    query, bind = aql.co_people("1", min_shared=2)
    assert "INBOUND @movie acted_in, directed, wrote" in query
    assert "COUNT_DISTINCT(pid)" in query
    assert bind == {"movie": "movies/1", "min_shared": 2}
    query, bind = aql.user_affinity("5")
    assert "INBOUND r.id acted_in, directed, wrote" in query
    assert "OUTBOUND r.id in_genre" in query
    assert "FILTER IS_NUMBER(e.rating)" in query
    assert bind == {"user": "users/5"}


def test_explain_joins_paths_at_the_shared_vertex() -> None:
    query, bind = aql.explain_paths("5", "1", min_rating=4.0)
    assert "ANY @movie similar_to" in query
    assert "ANY @movie acted_in, directed, wrote, in_genre, tagged" in query
    assert "FILTER e.rating >= @min_rating AND m._id != @movie" in query
    assert bind == {"user": "users/5", "movie": "movies/1", "min_rating": 4.0}


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["1", "tom_hanks", "Tom-Hanks.Jr", "a:b", "x@y(z)+,=;$!*'%", "k" * 254, "_"],
)
def test_valid_keys(key: str) -> None:
    assert aql.key_problem(key) is None
    assert aql.check_key(key, "movies vertex row 0") == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "movies vertex row 3: key is empty"),
        ("a/b", "movies vertex row 3: key 'a/b' has characters ArangoDB does not allow: '/'"),
        ("a b", "movies vertex row 3: key 'a b' has characters ArangoDB does not allow: ' '"),
        ("café", "movies vertex row 3: key 'café' has characters ArangoDB does not allow: 'é'"),
        ("a#b?c", "has characters ArangoDB does not allow: '#?'"),
        ("k" * 255, "movies vertex row 3: key is longer than 254 bytes"),
        (7, "movies vertex row 3: key must be a string, got int"),
    ],
)
def test_invalid_keys(key: Any, message: str) -> None:
    with pytest.raises(GraphDataError, match=re.escape(message)):
        aql.check_key(key, "movies vertex row 3")


@pytest.mark.parametrize("name", ["Tom Hanks", "Penélope Cruz", "Ōshima Nagisa", "?!", "a/b c"])
def test_slugs_are_valid_keys(name: str) -> None:
    assert aql.key_problem(slug(name)) is None


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [("42", "1", "42:1"), ("tom_hanks", "1", "tom_hanks:1"), ("a-b", "c", "a-b:c")],
)
def test_edge_keys_are_readable_when_plain(src: str, dst: str, expected: str) -> None:
    assert aql.edge_key(src, dst) == expected


def test_edge_keys_are_distinct_valid_and_deterministic() -> None:
    pairs = [
        ("a-b", "c"),
        ("a", "b-c"),
        ("a:b", "c"),
        ("a", "b:c"),
        ("h", "x"),
        ("k" * 200, "k" * 60),
    ]
    keys = [aql.edge_key(s, d) for s, d in pairs]
    assert len(set(keys)) == len(keys)
    assert all(aql.key_problem(k) is None for k in keys)
    assert keys == [aql.edge_key(s, d) for s, d in pairs]
    hashed = aql.edge_key("a:b", "c")
    assert hashed.startswith("h:") and hashed.count(":") == 2
