"""The explanation link table: each movie's links as codes ordered by edge priority then via
key, a similar_to link only one step from a seed, kept over feedback writes and rebuilt when
content changes (explain_many's answers are ``explain``'s either way), built once however many
requests ask for it together."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

import features.graph.explain_links as explain_links_module
from features.graph.batch import GraphBatch
from features.graph.explain_links import (
    CACHE_KEY,
    ExplainLinks,
    build_explain_links,
    explain_links,
)
from features.graph.local import LocalGraphStore
from features.graph.local_state import GraphState
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import EXPLANATION_PRIORITY


def _movies(keys: str) -> pd.DataFrame:
    return pd.DataFrame({"key": list(keys), "title": [f"Movie {k}" for k in keys]})


def _rated(user: str, movies: str, rating: float = 5.0) -> pd.DataFrame:
    n = len(movies)
    return pd.DataFrame(
        {"src": [user] * n, "dst": list(movies), "rating": [rating] * n, "timestamp": [1.0] * n}
    )


def test_codes_order_a_movies_links_by_edge_priority_then_via_key(tiny_batch: GraphBatch) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    state = store.state
    links = build_explain_links(state)
    m = state.vertices[VertexKind.MOVIE].find("2")
    codes, _ = links.of(np.array([m]))
    decoded = []
    for code in sorted(codes.tolist()):
        kind = int(links.kinds(np.array([code]))[0])
        via_kind, via = links.via(kind, code)
        assert via_kind is not None  # movie 2 has no similar_to link
        decoded.append((links.edges[kind], state.vertices[via_kind].key_at(via)))
    expected = [
        (EdgeKind.DIRECTED, "james_cameron"),
        (EdgeKind.WROTE, "james_cameron"),
        (EdgeKind.ACTED_IN, "michael_biehn"),
        (EdgeKind.ACTED_IN, "sigourney_weaver"),
        (EdgeKind.TAGGED, "space"),
        (EdgeKind.IN_GENRE, "action"),
        (EdgeKind.IN_GENRE, "sci_fi"),
    ]
    assert decoded == expected
    order = {e: i for i, e in enumerate(EXPLANATION_PRIORITY)}
    assert decoded == sorted(decoded, key=lambda p: (order[p[0]], p[1]))


def test_a_chain_of_two_similar_links_explains_nothing() -> None:
    """seed a -similar- b -similar- c: b is explained by a, c by nothing (no shared vertex)."""
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, _movies("abc"))
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u"], "name": ["U"]}))
    similar = pd.DataFrame({"src": ["a", "b"], "dst": ["b", "c"], "score": [0.9, 0.9]})
    batch.add_edges(EdgeKind.SIMILAR_TO, similar)
    batch.add_edges(EdgeKind.RATED, _rated("u", "a"))
    store = LocalGraphStore()
    store.upsert(batch)
    got = store.explain_many("u", ["b", "c", "a"])
    assert got == [store.explain("u", m) for m in ("b", "c", "a")]
    assert got[0] is not None and got[0].edge is EdgeKind.SIMILAR_TO and got[0].seed == "a"
    assert got[1] is None and got[2] is None


def test_kept_over_a_feedback_write_and_rebuilt_when_content_changes() -> None:
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, _movies("abcd"))
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u"], "name": ["U"]}))
    batch.add_vertices(VertexKind.TAG, pd.DataFrame({"key": ["t1", "t2"], "name": ["T1", "T2"]}))
    batch.add_edges(EdgeKind.TAGGED, pd.DataFrame({"src": ["a", "b"], "dst": ["t1", "t1"]}))
    batch.add_edges(EdgeKind.RATED, _rated("u", "a"))
    store = LocalGraphStore()
    store.upsert(batch)
    assert [e is not None for e in store.explain_many("u", ["b", "c", "d"])] == [True, False, False]
    table = explain_links(store.state)

    feedback = GraphBatch()
    feedback.add_edges(EdgeKind.RATED, _rated("u", "d", 1.0))
    store.upsert(feedback)
    assert store.state.cache[CACHE_KEY] is table  # users' edges only: carried over

    content = GraphBatch()
    content.add_edges(EdgeKind.TAGGED, pd.DataFrame({"src": ["a", "c"], "dst": ["t2", "t2"]}))
    store.upsert(content)
    assert CACHE_KEY not in store.state.cache
    got = store.explain_many("u", ["b", "c"])
    assert got == [store.explain("u", m) for m in ("b", "c")]
    assert got[1] is not None and got[1].via_key == "t2"
    assert explain_links(store.state) is not table


def test_requests_arriving_together_build_the_table_once(
    tiny_batch: GraphBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    builds: list[int] = []
    real = explain_links_module.build_explain_links

    def slow_build(state: GraphState) -> ExplainLinks:
        builds.append(1)
        time.sleep(0.05)  # long enough for every other thread to ask meanwhile
        return real(state)

    monkeypatch.setattr(explain_links_module, "build_explain_links", slow_build)
    start = threading.Barrier(8)
    got: list[ExplainLinks] = []

    def ask() -> None:
        start.wait()
        got.append(explain_links(store.state))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len(got) == 8 and all(table is got[0] for table in got)


def test_warm_reads_builds_what_a_first_request_would(tiny_batch: GraphBatch) -> None:
    """LocalGraphStore.warm_reads (a served process's start): the movie and user key indexes
    and the explanation links exist afterwards, so the first explain_many builds nothing."""
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    state = store.state
    movies, users = state.vertices[VertexKind.MOVIE], state.vertices[VertexKind.USER]
    for table in (movies, users):
        table.__dict__.pop("index", None)
    state.cache.pop(CACHE_KEY, None)
    store.warm_reads()
    assert "index" in movies.__dict__ and "index" in users.__dict__
    built = state.cache[CACHE_KEY]
    assert isinstance(built, ExplainLinks)
    user = users.key_at(0)
    store.explain_many(user, [movies.key_at(0), movies.key_at(1)])
    assert state.cache[CACHE_KEY] is built  # read, not built again
