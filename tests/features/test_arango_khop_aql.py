"""The k-hop AQL (features/graph/arango_khop_aql.py), checked as text where no server runs:
per hop and edge kind, one aggregated step out of the frontier and one back, both over the edge
index in the kind's known direction; no traversal, no vertex document read; i == j terms removed
per edge; the cut at ``limit`` made server-side. A last test evaluates the same two-step
formula with pandas on a random graph against the embedded store (the arithmetic, not the AQL)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.graph.arango_khop_aql import TIE_MARGIN, khop_scores
from features.graph.local import LocalGraphStore
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    EdgeKind,
    VertexKind,
)
from features.importers.synthetic import generate_synthetic


def _block(query: str, name: str) -> str:
    """The text of ``LET name = (...)`` up to the next top-level LET."""
    return query.split(f"\nLET {name} = ", 1)[1].split("\nLET ", 1)[0]


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_each_hop_is_two_aggregated_edge_index_steps_per_kind(hops: int) -> None:
    query, bind = khop_scores("7", hops=hops, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)
    content = [k for k in CONTENT_EDGES if k in DEFAULT_HOP_WEIGHTS]
    for n in range(1, hops + 1):
        for kind in content:
            movie, via = (
                ("_to", "_from")
                if EDGE_SPECS[kind].dst is VertexKind.MOVIE
                else (
                    "_from",
                    "_to",
                )
            )
            out = _block(query, f"t_{kind.value}_{n}")
            assert f"FOR x IN x{n - 1}\n    FOR e IN {kind.value}\n" in out
            assert f"FILTER e.{movie} == x.id\n" in out  # edge index on the movie's side
            assert f"COLLECT v = e.{via} AGGREGATE t = SUM(x.w)" in out
            back = _block(query, f"y_{kind.value}_{n}")
            assert f"FOR a IN t_{kind.value}_{n}\n    FOR e IN {kind.value}\n" in back
            assert f"FILTER e.{via} == a.v\n" in back  # edge index on the shared vertex's side
            # i == j removed per edge: t_v minus the movie's own weight, zero terms dropped.
            assert f"LET d = a.t - NOT_NULL(xw{n}[e.{movie}], 0)\n      FILTER d != 0" in back
            assert f"COLLECT id = e.{movie} AGGREGATE s = SUM(d)" in back
            assert f"RETURN {{ id: id, w: @w_{kind.value} * s }}" in back
        sim = _block(query, f"y_similar_to_{n}")
        assert "FILTER e._from == x.id AND e._to != x.id" in sim  # both ends, no self-loops
        assert "FILTER e._to == x.id AND e._from != x.id" in sim
        assert f"FOR x IN x{n - 1} " in sim and f"x{n + 1}" not in sim
        merged = _block(query, f"x{n}")
        ys = ", ".join(f"y_{k.value}_{n}" for k in (*content, EdgeKind.SIMILAR_TO))
        assert f"FOR r IN FLATTEN([{ys}])\n    COLLECT id = r.id AGGREGATE w = SUM(r.w)" in merged
    assert f"LET x{hops + 1} " not in query
    levels = ", ".join(f"x{n}" for n in range(1, hops + 1))
    assert f"FOR r IN FLATTEN([{levels}])" in query
    assert bind["user"] == "users/7" and bind["min_rating"] == 4.0


def test_no_traversal_and_no_vertex_document_in_the_hot_loop() -> None:
    query, _ = khop_scores("7", hops=3, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)
    assert not re.search(r"\bIN \d+\.\.\d+\b|OUTBOUND|INBOUND|\bANY\b", query)
    assert query.count("DOCUMENT(") == 1 and "LET found = DOCUMENT(@user) != null" in query
    edge_names = {k.value for k in EdgeKind}
    loops = re.findall(r"FOR (\w+) IN (\w+)", query)
    over_collections = [(var, src) for var, src in loops if src in edge_names]
    assert over_collections and all(var == "e" for var, _ in over_collections)
    # Every loop over a collection is an equality lookup on _from or _to: an edge-index read.
    for match in re.finditer(r"FOR e IN (\w+)\s+FILTER e\.(_from|_to) == ", query):
        assert match.group(1) in edge_names
    assert len(re.findall(r"FOR e IN (\w+)\s+FILTER e\.(_from|_to) == ", query)) == len(
        over_collections
    )
    vertex_names = {k.value for k in VertexKind}
    assert not any(src in vertex_names for _, src in loops)


def test_seeds_and_seen_come_from_the_users_edges() -> None:
    query, bind = khop_scores("7", hops=1, weights={EdgeKind.DIRECTED: 1.0}, min_rating=4.1)
    x0 = _block(query, "x0")
    assert "FOR e IN rated\n    FILTER e._from == @user AND e.rating >= @min_rating" in x0
    assert "COLLECT id = e._to\n    RETURN { id: id, w: 1 }" in x0
    for kind in ("rated", "watched", "not_interested"):
        assert f"(FOR e IN {kind} FILTER e._from == @user RETURN e._to)" in query
    assert "FILTER s != 0 AND NOT HAS(seen_set, id)" in query
    assert bind["min_rating"] == float(np.float32(4.1))  # a stored float32 4.1 passes


def test_limit_sorts_and_cuts_server_side_keeping_near_ties() -> None:
    query, bind = khop_scores("7", hops=2, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0, limit=25)
    assert "LET ranked = (FOR r IN scored SORT r.s DESC RETURN r)" in query
    assert "LET cut = LENGTH(ranked) > @limit ? ranked[@limit - 1].s : null" in query
    assert "FILTER cut == null OR r.s >= cut - ABS(cut) * @tie_margin" in query
    assert bind["limit"] == 25 and bind["tie_margin"] == TIE_MARGIN
    assert TIE_MARGIN > 2.0**-31  # wider than the 32-significant-bit rounding step
    unlimited, bind = khop_scores("7", hops=2, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)
    assert "SORT" not in unlimited and "limit" not in bind and "tie_margin" not in bind
    with pytest.raises(ValueError, match="the AQL needs limit >= 1 or None, got 0"):
        khop_scores("7", hops=2, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0, limit=0)


@pytest.mark.parametrize(
    "weights",
    [
        {EdgeKind.DIRECTED: 1.0},
        {EdgeKind.SIMILAR_TO: 2.0},
        {EdgeKind.IN_GENRE: 0.05, EdgeKind.TAGGED: 0.3, EdgeKind.ACTED_IN: 0.0},
        dict(DEFAULT_HOP_WEIGHTS),
        {},
    ],
    ids=["directed", "similar", "genre-tag-zero-actor", "defaults", "none"],
)
def test_follows_exactly_the_weighted_edge_kinds(weights: dict[EdgeKind, float]) -> None:
    query, bind = khop_scores("7", hops=2, weights=weights, min_rating=4.0)
    followed = {k.value for k, w in weights.items() if w != 0}
    hopped = set(re.findall(r"FOR e IN (\w+)\s+FILTER e\.\w+ == (?:x\.id|a\.v)", query))
    assert hopped == followed
    assert {k[2:] for k in bind if k.startswith("w_")} == followed
    for name in followed:
        assert bind[f"w_{name}"] == weights[EdgeKind(name)]


@pytest.mark.parametrize(
    ("hops", "message"),
    [
        (0, "khop_scores: hops must be 1, 2 or 3, got 0"),
        (4, "khop_scores: hops must be 1, 2 or 3, got 4"),
        (True, "khop_scores: hops must be 1, 2 or 3, got True"),
        (2.0, "khop_scores: hops must be 1, 2 or 3, got 2.0"),
    ],
)
def test_rejects_hops_outside_1_to_3(hops: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        khop_scores("7", hops=hops, weights=DEFAULT_HOP_WEIGHTS, min_rating=4.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({EdgeKind.RATED: 1.0}, "khop weights: edge kind 'rated' cannot be followed"),
        ({EdgeKind.TAGGED: float("nan")}, "khop weights: weight of 'tagged' is not finite"),
    ],
)
def test_rejects_bad_weights(weights: dict[EdgeKind, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        khop_scores("7", hops=2, weights=weights, min_rating=4.0)


# --- the formula the AQL computes, evaluated with pandas ---------------------------------------


def _two_step_hop(
    x: pd.Series, edges: dict[EdgeKind, pd.DataFrame], weights: dict[EdgeKind, float]
) -> pd.Series:
    """One hop as the AQL does it: t_v per shared vertex, then sum_v (t_v - x_j) per movie."""
    parts = []
    for kind, w in weights.items():
        ef = edges[kind]
        if kind is EdgeKind.SIMILAR_TO:
            ef = ef[ef["src"] != ef["dst"]]
            forward = ef.rename(columns={"src": "i", "dst": "j"})
            backward = ef.rename(columns={"dst": "i", "src": "j"})
            both = pd.concat([forward, backward])
            both = both[both["i"].isin(x.index)]
            parts.append(pd.Series(w * x.loc[both["i"]].to_numpy(), index=both["j"].to_numpy()))
            continue
        movie, via = ("dst", "src") if EDGE_SPECS[kind].dst is VertexKind.MOVIE else ("src", "dst")
        touched = ef[ef[movie].isin(x.index)]
        t = x.loc[touched[movie]].groupby(touched[via].to_numpy()).sum()
        back = ef[ef[via].isin(t.index)]
        d = t.loc[back[via]].to_numpy() - x.reindex(back[movie]).fillna(0.0).to_numpy()
        keep = d != 0
        parts.append(pd.Series(w * d[keep], index=back[movie].to_numpy()[keep]))
    if not parts:
        return pd.Series(dtype=float)
    y = pd.concat(parts).groupby(level=0).sum()
    return y[y != 0]


def test_the_per_edge_subtraction_gives_the_embedded_stores_walk_counts() -> None:
    store = LocalGraphStore()
    store.upsert(generate_synthetic(movies=80, people=50, users=5, ratings_per_user=10, genres=5))
    edges = {k: store.edge_frame(k) for k in (*CONTENT_EDGES, EdgeKind.SIMILAR_TO)}
    rated = store.edge_frame(EdgeKind.RATED)
    for user in ("u1", "u2", "u3"):
        mine = rated[rated["src"] == user]
        seen = set(mine["dst"])
        for kind in (EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED):
            ef = store.edge_frame(kind)
            seen |= set(ef.loc[ef["src"] == user, "dst"])
        x = pd.Series(1.0, index=sorted(set(mine.loc[mine["rating"] >= 3.5, "dst"])))
        weights = dict(DEFAULT_HOP_WEIGHTS)
        total = pd.Series(dtype=float)
        for _ in range(3):
            x = _two_step_hop(x, edges, weights)
            total = total.add(x, fill_value=0.0)
        got = {k: v for k, v in total.items() if v != 0 and k not in seen}
        want = dict(store.khop_scores(user, hops=3, min_rating=3.5))
        assert set(got) == set(want)
        assert [got[k] for k in want] == pytest.approx(list(want.values()), rel=1e-9)
