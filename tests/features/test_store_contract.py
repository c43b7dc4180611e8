"""The GraphStore contract, run against every store (see conftest: local always; the ArangoDB
store against the local test server always, for what that server can answer: writes, reads and
the default k-hop engine; a real ArangoDB, with both k-hop engines, when a server is given).
Expected values are counted by hand on the tiny graph drawn in conftest's docstring, and
cross-checked against a dense numpy transcription of store.py's formulas."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from features.graph.batch import GraphBatch, GraphDataError
from features.graph.local import LocalGraphStore
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    VERTEX_COLUMNS,
    EdgeKind,
    VertexKind,
)
from features.graph.store import GraphStore, UnknownVertexError
from features.importers.synthetic import generate_synthetic
from tests.features.conftest import skip_unless_full_aql

DIRECTED_AND_SIMILAR = {EdgeKind.DIRECTED: 1.0, EdgeKind.SIMILAR_TO: 1.0}

# --- a dense reference of the store.py k-hop formula -------------------------------------


def reference_khop(
    store: GraphStore,
    user: str,
    hops: int,
    weights: Mapping[EdgeKind, float],
    min_rating: float = 4.0,
) -> list[tuple[str, float]]:
    """score = sum_h H^h(s), H(x)[j] = sum_e w_e sum_{i != j} x[i] n_e(i, j), done densely."""
    keys = list(store.vertex_frame(VertexKind.MOVIE)["key"])
    pos = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    m = np.zeros((n, n))
    for kind, w in weights.items():
        ef = store.edge_frame(kind)
        if kind is EdgeKind.SIMILAR_TO:
            a = np.zeros((n, n))
            for s, d in zip(ef["src"], ef["dst"], strict=True):
                if s != d:  # n(i, j): similar_to edges between i and j, either direction
                    a[pos[s], pos[d]] += 1
                    a[pos[d], pos[s]] += 1
            m += w * a
            continue
        movie_side = "dst" if EDGE_SPECS[kind].dst is VertexKind.MOVIE else "src"
        other_side = "src" if movie_side == "dst" else "dst"
        others = {k: i for i, k in enumerate(sorted(set(ef[other_side])))}
        b = np.zeros((len(others), n))
        for o, mv in zip(ef[other_side], ef[movie_side], strict=True):
            b[others[o], pos[mv]] = 1.0
        shared = b.T @ b  # n_e(i, j): vertices linked to both i and j
        np.fill_diagonal(shared, 0.0)
        m += w * shared
    rated = store.edge_frame(EdgeKind.RATED)
    mine = rated[rated["src"] == user]
    x = np.zeros(n)
    x[[pos[k] for k in mine.loc[mine["rating"] >= min_rating, "dst"]]] = 1.0
    total = np.zeros(n)
    for _ in range(hops):
        x = m.T @ x
        total += x
    seen = set(mine["dst"])
    for kind in (EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED):
        ef = store.edge_frame(kind)
        seen |= set(ef.loc[ef["src"] == user, "dst"])
    out = [(k, float(total[pos[k]])) for k in keys if k not in seen and total[pos[k]] != 0]
    return sorted(out, key=lambda kv: (-round(kv[1], 9), kv[0]))


def assert_scores(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-9)


@pytest.fixture
def filled(store: GraphStore, tiny_batch: GraphBatch) -> GraphStore:
    store.upsert(tiny_batch)
    return store


def snapshot(store: GraphStore) -> dict[str, pd.DataFrame]:
    frames = {k.value: store.vertex_frame(k) for k in VertexKind}
    frames.update({k.value: store.edge_frame(k) for k in EdgeKind})
    return frames


def assert_same_snapshot(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


# --- upsert and reads -----------------------------------------------------------------------

# Every collection, zero where the tiny batch has nothing (e.g. the Freebase crew kinds).
TINY_COUNTS = {
    **{k.value: 0 for k in (*VertexKind, *EdgeKind)},
    "movies": 9,
    "people": 5,
    "genres": 3,
    "tags": 2,
    "users": 3,
    "acted_in": 4,
    "directed": 5,
    "wrote": 5,
    "in_genre": 11,
    "tagged": 3,
    "rated": 7,
    "watched": 1,
    "not_interested": 1,
    "similar_to": 1,
}


def test_empty_store_counts_every_kind(store: GraphStore) -> None:
    assert store.counts() == dict.fromkeys(TINY_COUNTS, 0)


def test_upsert_creates_and_counts(store: GraphStore, tiny_batch: GraphBatch) -> None:
    report = store.upsert(tiny_batch)
    assert store.counts() == TINY_COUNTS
    assert {k: v for k, v in report.created.items() if v} == {
        k: v for k, v in TINY_COUNTS.items() if v
    }
    assert not any(report.updated.values())
    assert report.changed


def test_same_batch_twice_changes_nothing(filled: GraphStore, tiny_batch: GraphBatch) -> None:
    before = snapshot(filled)
    report = filled.upsert(tiny_batch)
    assert not report.changed
    assert not any(report.created.values()) and not any(report.updated.values())
    assert_same_snapshot(before, snapshot(filled))


def test_upsert_replaces_attributes_and_counts_updates(filled: GraphStore) -> None:
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {"key": ["1", "1"], "title": ["Alien (draft)", "Alien (1979)"], "year": [0, 1979]}
        ),
    )
    batch.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["ann"], "dst": ["7"], "rating": [2.5]}))
    report = filled.upsert(batch)
    assert report.updated.get("movies") == 1 and report.updated.get("rated") == 1
    assert not any(report.created.values())
    movie = filled.vertex(VertexKind.MOVIE, "1")
    assert movie is not None and movie["title"] == "Alien (1979)"  # the batch's last row wins
    assert movie["genres"] == ""  # replaced by the batch row, whose genres were not given
    rated = filled.edge_frame(EdgeKind.RATED).set_index(["src", "dst"])
    assert rated.loc[("ann", "7"), "rating"] == 2.5
    assert rated.loc[("ann", "7"), "timestamp"] == 0
    assert filled.counts() == TINY_COUNTS


def test_edge_may_end_at_a_vertex_of_the_same_batch(filled: GraphStore) -> None:
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["10"], "title": ["Prometheus"]}))
    batch.add_edges(EdgeKind.DIRECTED, pd.DataFrame({"src": ["ridley_scott"], "dst": ["10"]}))
    report = filled.upsert(batch)
    assert report.created.get("movies") == 1 and report.created.get("directed") == 1
    assert filled.counts()["directed"] == 6
    skip_unless_full_aql(filled)
    assert filled.co_people("5", min_shared=1) == [("1", 1), ("10", 1)]


DANGLING = [
    # (edge kind, src, dst, the key the error must name)
    (EdgeKind.ACTED_IN, "nobody", "1", "nobody"),
    (EdgeKind.IN_GENRE, "1", "western", "western"),
    (EdgeKind.RATED, "zed", "2", "zed"),
    (EdgeKind.SIMILAR_TO, "1", "404", "404"),
]


@pytest.mark.parametrize(("kind", "src", "dst", "missing"), DANGLING)
def test_dangling_edge_is_refused_and_store_unchanged(
    filled: GraphStore, kind: EdgeKind, src: str, dst: str, missing: str
) -> None:
    before, counts = snapshot(filled), filled.counts()
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["10"], "title": ["Prometheus"]}))
    batch.add_edges(EdgeKind.DIRECTED, pd.DataFrame({"src": ["ridley_scott"], "dst": ["10"]}))
    batch.add_edges(kind, pd.DataFrame({"src": [src], "dst": [dst]}))
    with pytest.raises(GraphDataError) as err:
        filled.upsert(batch)
    assert kind.value in str(err.value) and repr(missing) in str(err.value)
    assert filled.counts() == counts
    assert filled.vertex(VertexKind.MOVIE, "10") is None
    assert_same_snapshot(before, snapshot(filled))


def test_vertex_and_frames(filled: GraphStore) -> None:
    alien = filled.vertex(VertexKind.MOVIE, "1")
    assert alien is not None
    assert {k: alien[k] for k in ("key", "title", "year", "genres", "imdb_id", "tmdb_id")} == {
        "key": "1",
        "title": "Alien",
        "year": 1979,
        "genres": "Sci-Fi",
        "imdb_id": "",
        "tmdb_id": 0,
    }
    assert filled.vertex(VertexKind.MOVIE, "404") is None
    assert filled.vertex(VertexKind.PERSON, "james_cameron") == {
        "key": "james_cameron",
        "name": "James Cameron",
    }
    movies = filled.vertex_frame(VertexKind.MOVIE)
    assert list(movies.columns) == ["key", *[c.name for c in VERTEX_COLUMNS[VertexKind.MOVIE]]]
    assert list(movies["key"]) == [str(i) for i in range(1, 10)]
    assert list(filled.vertex_frame(VertexKind.USER)["key"]) == ["ann", "bob", "cy"]
    rated = filled.edge_frame(EdgeKind.RATED)
    assert list(rated.columns) == ["src", "dst", "rating", "timestamp"]
    assert list(zip(rated["src"], rated["dst"], rated["rating"], strict=True)) == [
        ("ann", "1", 4.0),
        ("ann", "3", 5.0),
        ("ann", "7", 2.0),
        ("bob", "2", 4.5),
        ("bob", "4", 4.0),
        ("bob", "9", 1.0),
        ("cy", "5", 3.0),
    ]


# --- k-hop ----------------------------------------------------------------------------------


def test_khop_one_hop_default_weights_by_hand(filled: GraphStore) -> None:
    # ann likes 1 Alien (4.0) and 3 The Terminator (5.0); she has seen 1, 3, 5, 6 and 7.
    # Movie 2 Aliens shares with 1: actor Weaver 0.5, genre Sci-Fi 0.05, tag space 0.3 = 0.85,
    #   with 3: director Cameron 1.0, writer Cameron 0.8, actor Biehn 0.5, Sci-Fi and Action
    #   0.05 each = 2.4; total 3.25.
    # Movie 4 Titanic shares director and writer Cameron with 3: 1.0 + 0.8 = 1.8.
    # Movie 9 Moon shares Sci-Fi with 1 and with 3: 0.05 + 0.05 = 0.1.
    # Movie 8 Solaris has no edges: score 0, dropped. 5, 6, 7 are seen.
    expected = [("2", 3.25), ("4", 1.8), ("9", 0.1)]
    assert_scores(filled.khop_scores("ann", hops=1), expected)
    assert_scores(expected, reference_khop(filled, "ann", 1, DEFAULT_HOP_WEIGHTS))


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        # Directors: Scott {1, 5}, Cameron {2, 3, 4}; similar_to 4-7. s = {1, 3}.
        # H s: 5 <- 1 (Scott); 2, 4 <- 3 (Cameron): {5: 1, 2: 1, 4: 1}.
        (1, [("2", 1.0), ("4", 1.0)]),
        # H^2 s from {5:1, 2:1, 4:1}: 1 <- 5; 2 <- 4; 3 <- 2 + 4 = 2; 4 <- 2; 7 <- 4 (similar).
        # Sums for the unseen: 2: 1 + 1 = 2, 4: 1 + 1 = 2 (tie: key order).
        (2, [("2", 2.0), ("4", 2.0)]),
        # H^3 s from {1:1, 2:1, 3:2, 4:1, 7:1}: 2 <- 3 + 4 = 3; 4 <- 2 + 3 + 7 = 4.
        # Sums: 2: 1 + 1 + 3 = 5; 4: 1 + 1 + 4 = 6.
        (3, [("4", 6.0), ("2", 5.0)]),
    ],
)
def test_khop_directed_and_similar_by_hand(
    filled: GraphStore, hops: int, expected: list[tuple[str, float]]
) -> None:
    got = filled.khop_scores("ann", hops=hops, weights=DIRECTED_AND_SIMILAR)
    assert_scores(got, expected)
    assert_scores(expected, reference_khop(filled, "ann", hops, DIRECTED_AND_SIMILAR))


def test_khop_follows_only_weighted_kinds(filled: GraphStore) -> None:
    # Genres only: 2 shares Sci-Fi with 1 and Sci-Fi + Action with 3 = 3; 9 shares Sci-Fi with
    # both = 2; 4 Titanic (director Cameron, like 3) is not reached: directed is not followed.
    got = filled.khop_scores("ann", hops=1, weights={EdgeKind.IN_GENRE: 1.0})
    assert_scores(got, [("2", 3.0), ("9", 2.0)])


@pytest.mark.parametrize("user", ["ann", "bob", "cy"])
@pytest.mark.parametrize("hops", [1, 2, 3])
@pytest.mark.parametrize("min_rating", [4.0, 4.5, 1.0])
def test_khop_matches_dense_reference(
    filled: GraphStore, user: str, hops: int, min_rating: float
) -> None:
    got = filled.khop_scores(user, hops=hops, min_rating=min_rating)
    assert_scores(got, reference_khop(filled, user, hops, DEFAULT_HOP_WEIGHTS, min_rating))


def test_khop_matches_dense_reference_on_a_random_graph(store: GraphStore) -> None:
    # On the local test server, test_arango_mirror.py compares with the embedded store instead
    # (this reference re-reads every edge frame per case: 14 s there for nothing new).
    skip_unless_full_aql(store)
    store.upsert(
        generate_synthetic(movies=60, people=40, users=6, ratings_per_user=12, genres=4, tags=8)
    )
    weights_sets: list[Mapping[EdgeKind, float]] = [
        DEFAULT_HOP_WEIGHTS,
        {EdgeKind.ACTED_IN: 1.0, EdgeKind.SIMILAR_TO: 0.5},
        {k: 1.0 for k in CONTENT_EDGES},
    ]
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        for weights in weights_sets:
            for hops in (1, 2, 3):
                expected = reference_khop(store, user, hops, weights, 3.5)
                got = store.khop_scores(user, hops=hops, weights=weights, min_rating=3.5)
                assert_scores(got, expected)


def test_khop_limit_and_empty_cases(filled: GraphStore) -> None:
    assert filled.khop_scores("ann", hops=1, limit=2) == filled.khop_scores("ann", hops=1)[:2]
    assert filled.khop_scores("cy") == []  # cy liked nothing
    # With min_rating 4.5 bob's one positive is 2 Aliens; he has seen 2, 4 and 9.
    bob = dict(filled.khop_scores("bob", hops=1, min_rating=4.5))
    assert "2" not in bob and "4" not in bob and "9" not in bob  # seen movies are dropped


@pytest.mark.parametrize("hops", [0, 4])
def test_khop_rejects_bad_hops(filled: GraphStore, hops: int) -> None:
    with pytest.raises(ValueError, match="hops must be 1, 2 or 3"):
        filled.khop_scores("ann", hops=hops)


# --- other traversals -----------------------------------------------------------------------


def test_co_people(filled: GraphStore) -> None:
    skip_unless_full_aql(filled)
    # People per movie: 1 {Scott, Weaver, O'Bannon}, 2 {Cameron, Weaver, Biehn},
    # 3 {Cameron, Biehn}, 4 {Cameron (directed and wrote: counted once)}.
    assert filled.co_people("2") == [("3", 2)]
    assert filled.co_people("2", min_shared=1) == [("3", 2), ("1", 1), ("4", 1)]
    assert filled.co_people("2", min_shared=1, limit=2) == [("3", 2), ("1", 1)]
    assert filled.co_people("4", min_shared=1) == [("2", 1), ("3", 1)]
    assert filled.co_people("8", min_shared=1) == []


def test_neighbours_directions(filled: GraphStore) -> None:
    skip_unless_full_aql(filled)
    cast = filled.neighbours(VertexKind.MOVIE, "2", EdgeKind.ACTED_IN, "in")
    assert [(n.kind, n.key, dict(n.attrs)) for n in cast] == [
        (VertexKind.PERSON, "michael_biehn", {"order": 2}),
        (VertexKind.PERSON, "sigourney_weaver", {"order": 1}),
    ]
    assert filled.neighbours(VertexKind.MOVIE, "2", EdgeKind.ACTED_IN, "any") == cast
    assert filled.neighbours(VertexKind.MOVIE, "2", EdgeKind.ACTED_IN, "out") == []
    directed = filled.neighbours(VertexKind.PERSON, "james_cameron", EdgeKind.DIRECTED, "out")
    assert [(n.kind, n.key) for n in directed] == [(VertexKind.MOVIE, m) for m in "234"]
    out = filled.neighbours(VertexKind.MOVIE, "4", EdgeKind.SIMILAR_TO, "out")
    assert [n.key for n in out] == ["7"] and out[0].attrs["score"] == pytest.approx(0.9)
    assert filled.neighbours(VertexKind.MOVIE, "4", EdgeKind.SIMILAR_TO, "in") == []
    assert [n.key for n in filled.neighbours(VertexKind.MOVIE, "7", EdgeKind.SIMILAR_TO)] == ["4"]
    genres = filled.neighbours(VertexKind.MOVIE, "2", EdgeKind.IN_GENRE, "out")
    assert [n.key for n in genres] == ["action", "sci_fi"]
    rated = filled.neighbours(VertexKind.USER, "ann", EdgeKind.RATED, "out")
    assert [(n.key, n.attrs["rating"], n.attrs["timestamp"]) for n in rated] == [
        ("1", 4.0, 200),
        ("3", 5.0, 300),
        ("7", 2.0, 100),
    ]


def test_user_affinity(filled: GraphStore) -> None:
    skip_unless_full_aql(filled)
    # ann: 3 (5.0 -> w 1.0), 1 (4.0 -> 0.5), 7 (2.0 -> -0.5); n = 3.
    ann = filled.user_affinity("ann")
    assert ann.genres == pytest.approx({"sci_fi": 1.5 / 3, "action": 1 / 3, "romance": -0.5 / 3})
    assert ann.people == pytest.approx(
        {
            "james_cameron": 1 / 3,  # once for 3 although he directed and wrote it
            "michael_biehn": 1 / 3,
            "ridley_scott": 0.5 / 3,
            "sigourney_weaver": 0.5 / 3,
            "dan_o_bannon": 0.5 / 3,
        }
    )
    # bob: 2 (4.5 -> 0.75), 4 (4.0 -> 0.5), 9 (1.0 -> -1.0); n = 3.
    bob = filled.user_affinity("bob")
    assert bob.genres == pytest.approx({"sci_fi": -0.25 / 3, "action": 0.25, "romance": 0.5 / 3})
    assert bob.people == pytest.approx(
        {"james_cameron": 1.25 / 3, "sigourney_weaver": 0.25, "michael_biehn": 0.25}
    )
    # cy rated only 5 at 3.0: weight 0, so every entry is zero and omitted.
    cy = filled.user_affinity("cy")
    assert cy.genres == {} and cy.people == {}


EXPLANATIONS = [
    # (user, movie, edge, seed, via key, text)
    (
        "ann",
        "2",
        EdgeKind.DIRECTED,  # beats writer Cameron, actor Biehn, genres and tag
        "3",
        "james_cameron",
        "You rated The Terminator 5/5; Aliens has the same director, James Cameron.",
    ),
    (
        "ann",
        "6",
        EdgeKind.WROTE,
        "1",
        "dan_o_bannon",
        "You rated Alien 4/5; Total Recall has the same writer, Dan O'Bannon.",
    ),
    (
        "ann",
        "9",
        EdgeKind.IN_GENRE,  # both seeds share Sci-Fi: the higher rated one wins
        "3",
        "sci_fi",
        "You rated The Terminator 5/5; Moon has the same genre, Sci-Fi.",
    ),
    (
        "bob",
        "7",
        EdgeKind.SIMILAR_TO,  # beats the shared genre Romance
        "4",
        "",
        "You rated Titanic 4/5; Notting Hill is similar to it.",
    ),
    (
        "bob",
        "3",
        EdgeKind.DIRECTED,  # seeds 2 (4.5) and 4 (4.0) both share Cameron
        "2",
        "james_cameron",
        "You rated Aliens 4.5/5; The Terminator has the same director, James Cameron.",
    ),
    (
        "bob",
        "1",
        EdgeKind.ACTED_IN,
        "2",
        "sigourney_weaver",
        "You rated Aliens 4.5/5; Alien has the same actor, Sigourney Weaver.",
    ),
    (
        "bob",
        "6",
        EdgeKind.IN_GENRE,  # shares Action and Sci-Fi with 2: the via key "action" comes first
        "2",
        "action",
        "You rated Aliens 4.5/5; Total Recall has the same genre, Action.",
    ),
]


@pytest.mark.parametrize(("user", "movie", "edge", "seed", "via", "text"), EXPLANATIONS)
def test_explain(
    filled: GraphStore, user: str, movie: str, edge: EdgeKind, seed: str, via: str, text: str
) -> None:
    skip_unless_full_aql(filled)
    got = filled.explain(user, movie)
    assert got is not None
    assert (got.user, got.movie, got.edge, got.seed, got.via_key) == (user, movie, edge, seed, via)
    assert got.text == text


def test_explain_prefers_the_newer_seed_on_equal_ratings(filled: GraphStore) -> None:
    skip_unless_full_aql(filled)
    batch = GraphBatch()
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame({"src": ["bob"], "dst": ["4"], "rating": [4.5], "timestamp": [200]}),
    )
    filled.upsert(batch)
    got = filled.explain("bob", "3")
    assert got is not None and got.seed == "4"  # 4.5 at t=200 beats 4.5 at t=100
    assert (
        got.text == "You rated Titanic 4.5/5; The Terminator has the same director, James Cameron."
    )


def test_explain_without_a_path(filled: GraphStore) -> None:
    skip_unless_full_aql(filled)
    assert filled.explain("ann", "8") is None  # Solaris has no edges
    assert filled.explain("cy", "1") is None  # cy liked nothing


# --- unknown vertices ------------------------------------------------------------------------

UNKNOWN = [
    ("khop_scores", ("nobody",), "no users vertex with key 'nobody'"),
    ("user_affinity", ("nobody",), "no users vertex with key 'nobody'"),
    ("explain", ("nobody", "1"), "no users vertex with key 'nobody'"),
    ("explain", ("ann", "404"), "no movies vertex with key '404'"),
    ("co_people", ("404",), "no movies vertex with key '404'"),
    (
        "neighbours",
        (VertexKind.PERSON, "nobody", EdgeKind.DIRECTED),
        "no people vertex with key 'nobody'",
    ),
]


@pytest.mark.parametrize(("method", "args", "message"), UNKNOWN)
def test_unknown_vertices(
    filled: GraphStore, method: str, args: tuple[object, ...], message: str
) -> None:
    if method != "khop_scores":
        skip_unless_full_aql(filled)
    with pytest.raises(UnknownVertexError) as err:
        getattr(filled, method)(*args)
    assert str(err.value) == message


def test_local_store_is_a_graph_store() -> None:
    assert isinstance(LocalGraphStore(), GraphStore)
