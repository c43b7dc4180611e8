"""Fixtures for the graph tests: every store behind one fixture, and a tiny hand-made graph.

The tiny graph (keys in brackets) is small enough to count paths by hand:

    movies  1 Alien, 2 Aliens, 3 The Terminator, 4 Titanic, 5 Blade Runner, 6 Total Recall,
            7 Notting Hill, 8 Solaris (no edges at all), 9 Moon
    directed   Ridley Scott [ridley_scott]: 1, 5     James Cameron [james_cameron]: 2, 3, 4
    wrote      James Cameron: 2, 3, 4                Dan O'Bannon [dan_o_bannon]: 1, 6
    acted_in   Sigourney Weaver [sigourney_weaver]: 1 (order 1), 2 (order 1)
               Michael Biehn [michael_biehn]: 2 (order 2), 3 (order 1)
    in_genre   Sci-Fi [sci_fi]: 1, 2, 3, 5, 6, 9    Action [action]: 2, 3, 6
               Romance [romance]: 4, 7
    tagged     space: 1, 2                           time_travel: 3
    similar_to 4 -> 7 (score 0.9)
    users  ann: rated 3 (5.0, t=300), 1 (4.0, t=200), 7 (2.0, t=100); watched 5; not_interested 6
           bob: rated 2 (4.5, t=100), 4 (4.0, t=200), 9 (1.0, t=300)
           cy:  rated 5 (3.0, t=100)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from uuid import uuid4

import pandas as pd
import pytest

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore

MOVIES = [
    ("1", "Alien", 1979),
    ("2", "Aliens", 1986),
    ("3", "The Terminator", 1984),
    ("4", "Titanic", 1997),
    ("5", "Blade Runner", 1982),
    ("6", "Total Recall", 1990),
    ("7", "Notting Hill", 1999),
    ("8", "Solaris", 1972),
    ("9", "Moon", 2009),
]
PEOPLE = [
    ("james_cameron", "James Cameron"),
    ("ridley_scott", "Ridley Scott"),
    ("sigourney_weaver", "Sigourney Weaver"),
    ("michael_biehn", "Michael Biehn"),
    ("dan_o_bannon", "Dan O'Bannon"),
]


def make_tiny_batch() -> GraphBatch:
    """The graph drawn in this module's docstring."""
    b = GraphBatch()
    movie_genres = {"1": "Sci-Fi", "2": "Sci-Fi|Action", "3": "Sci-Fi|Action", "4": "Romance"}
    b.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": [m[0] for m in MOVIES],
                "title": [m[1] for m in MOVIES],
                "year": [m[2] for m in MOVIES],
                "genres": [movie_genres.get(m[0], "") for m in MOVIES],
            }
        ),
    )
    b.add_vertices(VertexKind.PERSON, pd.DataFrame(PEOPLE, columns=["key", "name"]))
    b.add_vertices(
        VertexKind.GENRE,
        pd.DataFrame(
            [("sci_fi", "Sci-Fi"), ("action", "Action"), ("romance", "Romance")],
            columns=["key", "name"],
        ),
    )
    b.add_vertices(
        VertexKind.TAG,
        pd.DataFrame([("space", "space"), ("time_travel", "time travel")], columns=["key", "name"]),
    )
    b.add_vertices(
        VertexKind.USER,
        pd.DataFrame([("ann", "Ann"), ("bob", "Bob"), ("cy", "Cy")], columns=["key", "name"]),
    )

    def edges(kind: EdgeKind, rows: Sequence[tuple[object, ...]], columns: list[str]) -> None:
        b.add_edges(kind, pd.DataFrame(rows, columns=["src", "dst", *columns]))

    edges(EdgeKind.DIRECTED, [("ridley_scott", "1"), ("ridley_scott", "5")], [])
    edges(EdgeKind.DIRECTED, [("james_cameron", m) for m in "234"], [])
    edges(EdgeKind.WROTE, [("james_cameron", m) for m in "234"], [])
    edges(EdgeKind.WROTE, [("dan_o_bannon", "1"), ("dan_o_bannon", "6")], [])
    edges(
        EdgeKind.ACTED_IN,
        [
            ("sigourney_weaver", "1", 1),
            ("sigourney_weaver", "2", 1),
            ("michael_biehn", "2", 2),
            ("michael_biehn", "3", 1),
        ],
        ["order"],
    )
    genre_rows = [(m, "sci_fi") for m in "123569"]
    genre_rows += [(m, "action") for m in "236"] + [(m, "romance") for m in "47"]
    edges(EdgeKind.IN_GENRE, genre_rows, [])
    edges(
        EdgeKind.TAGGED,
        [("1", "space", 1.0), ("2", "space", 0.5), ("3", "time_travel", 1.0)],
        ["weight"],
    )
    edges(EdgeKind.SIMILAR_TO, [("4", "7", 0.9)], ["score"])
    edges(
        EdgeKind.RATED,
        [
            ("ann", "3", 5.0, 300),
            ("ann", "1", 4.0, 200),
            ("ann", "7", 2.0, 100),
            ("bob", "2", 4.5, 100),
            ("bob", "4", 4.0, 200),
            ("bob", "9", 1.0, 300),
            ("cy", "5", 3.0, 100),
        ],
        ["rating", "timestamp"],
    )
    edges(EdgeKind.WATCHED, [("ann", "5", 400, 90.0)], ["timestamp", "completion"])
    edges(EdgeKind.NOT_INTERESTED, [("ann", "6", 500)], ["timestamp"])
    return b


@pytest.fixture
def tiny_batch() -> GraphBatch:
    return make_tiny_batch()


# Stores whose server is the local ArangoDB test server: it runs the store's plain AQL (writes,
# reads, a user's movies, the edges of the k-hop snapshot), not traversal lookups.
PLAIN_AQL_ONLY: set[int] = set()


def skip_unless_full_aql(store: GraphStore) -> None:
    """Skip a test that needs AQL traversals when ``store`` talks to the local test server."""
    if id(store) in PLAIN_AQL_ONLY:
        pytest.skip("the local ArangoDB test server runs only the store's plain AQL")


@pytest.fixture(params=["local", "arango-test-server", "arango", "arango-aql-khop"])
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """An empty store of each kind. ``arango-test-server``: the ArangoDB store against the local
    test server (tests/features/arango_test_server.py). ``arango`` (k-hop from the movie-graph
    snapshot, the default) and ``arango-aql-khop`` (k-hop as one AQL query): a real ArangoDB,
    only when MARQUEE_ARANGO_URL names one. The local store is in memory here;
    tests/features/test_local_store.py covers its saving."""
    if request.param == "local":
        local = LocalGraphStore()
        yield local
        local.close()
        return
    from features.graph.arango import ArangoGraphStore

    if request.param == "arango-test-server":
        from tests.features.arango_test_server import FakeArango

        server = FakeArango(password="pw").start()
        fake = ArangoGraphStore.connect(server.url, "marquee_test", password="pw", create=True)
        PLAIN_AQL_ONLY.add(id(fake))
        try:
            yield fake
        finally:
            PLAIN_AQL_ONLY.discard(id(fake))
            fake.close()
            server.stop()
        return
    url = os.environ.get("MARQUEE_ARANGO_URL")
    if not url:
        pytest.skip("MARQUEE_ARANGO_URL is not set: no ArangoDB server to test against")
    arango = ArangoGraphStore.connect(
        url=url,
        database=f"marquee_test_{uuid4().hex[:8]}",
        username=os.environ.get("MARQUEE_ARANGO_USER", "root"),
        password=os.environ.get("MARQUEE_ARANGO_PASSWORD", ""),
        create=True,
        khop_engine="aql" if request.param == "arango-aql-khop" else "mirror",
    )
    try:
        yield arango
    finally:
        arango.drop()
        arango.close()
