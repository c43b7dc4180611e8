"""The k-hop path counts of store.py as one AQL query, aggregated per edge kind over edge indexes.

Hop h computes x_h = H(x_{h-1}) from x_{h-1} (an array of {id, w} with w != 0), per followed edge
kind e in its known direction, in two aggregated steps that read edges only, never a vertex:

1. for every frontier movie i, the e-edges at i (edge index on the movie's side), collected
   per shared vertex v: ``t_v = sum of x_i over frontier movies e-linked to v``;
2. for every such v, its e-edges (edge index on v's side), collected per movie j:
   ``sum_v (t_v - x_j)``, times w_e.

``t_v - x_j`` is the sum over the *other* frontier movies linked to v, so the i == j terms are
removed per edge, before anything is summed: the result is
``sum_e w_e sum_{i != j} x_i n_e(i, j)`` exactly as store.py defines it, and a vertex linked to
one movie only gives 0 (the embedded store drops such rows from its operator). similar_to edges
are followed from both ends, self-loops skipped. Every edge is touched a bounded number of times
per hop; a genre hub costs its degree twice, never its degree squared.

When ``limit`` is given the rows are sorted server-side and cut at the limit-th score, keeping
every row within a relative ``TIE_MARGIN`` of it: the client rounds scores as the embedded store
does, and rows that tie after rounding must all reach it to be ordered by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from features.graph.arango_aql import AqlQuery, float32_bound
from features.graph.arango_keys import vertex_id
from features.graph.schema import CONTENT_EDGES, EDGE_SPECS, USER_EDGES, EdgeKind, VertexKind
from features.graph.store import check_hop_weights

MAX_HOPS = 3
TIE_MARGIN = 1e-9  # > 2^-31: scores that round to the same 32 significant bits are this close


def _sides(kind: EdgeKind) -> tuple[str, str]:
    """(movie side, shared-vertex side) of a content edge kind: ``_to``/``_from`` for people."""
    return ("_to", "_from") if EDGE_SPECS[kind].dst is VertexKind.MOVIE else ("_from", "_to")


def _content_hop(n: int, kind: EdgeKind) -> str:
    movie, via = _sides(kind)
    name = kind.value
    return f"""
LET t_{name}_{n} = (
  FOR x IN x{n - 1}
    FOR e IN {name}
      FILTER e.{movie} == x.id
      COLLECT v = e.{via} AGGREGATE t = SUM(x.w)
      RETURN {{ v: v, t: t }}
)
LET y_{name}_{n} = (
  FOR a IN t_{name}_{n}
    FOR e IN {name}
      FILTER e.{via} == a.v
      LET d = a.t - NOT_NULL(xw{n}[e.{movie}], 0)
      FILTER d != 0
      COLLECT id = e.{movie} AGGREGATE s = SUM(d)
      RETURN {{ id: id, w: @w_{name} * s }}
)"""


def _similar_hop(n: int) -> str:
    name = EdgeKind.SIMILAR_TO.value
    return f"""
LET y_{name}_{n} = UNION(
  (FOR x IN x{n - 1} FOR e IN {name} FILTER e._from == x.id AND e._to != x.id
     RETURN {{ id: e._to, w: @w_{name} * x.w }}),
  (FOR x IN x{n - 1} FOR e IN {name} FILTER e._to == x.id AND e._from != x.id
     RETURN {{ id: e._from, w: @w_{name} * x.w }})
)"""


def _hop(n: int, kinds: tuple[EdgeKind, ...]) -> str:
    parts = [f"\nLET xw{n} = ZIP(x{n - 1}[*].id, x{n - 1}[*].w)"]
    for kind in kinds:
        parts.append(_similar_hop(n) if kind is EdgeKind.SIMILAR_TO else _content_hop(n, kind))
    ys = ", ".join(f"y_{k.value}_{n}" for k in kinds)
    parts.append(f"""
LET x{n} = (
  FOR r IN FLATTEN([{ys}])
    COLLECT id = r.id AGGREGATE w = SUM(r.w)
    FILTER w != 0
    RETURN {{ id: id, w: w }}
)""")
    return "".join(parts)


def _seen() -> str:
    lists = ",\n  ".join(
        f"(FOR e IN {k.value} FILTER e._from == @user RETURN e._to)" for k in USER_EDGES
    )
    return f"LET seen = UNION_DISTINCT(\n  {lists}\n)\nLET seen_set = ZIP(seen, seen)"


def _rows(limit: int | None) -> str:
    if limit is None:
        return """LET rows = (
  FOR r IN scored
    RETURN { k: PARSE_IDENTIFIER(r.id).key, s: r.s }
)"""
    return """LET ranked = (FOR r IN scored SORT r.s DESC RETURN r)
LET cut = LENGTH(ranked) > @limit ? ranked[@limit - 1].s : null
LET rows = (
  FOR r IN ranked
    FILTER cut == null OR r.s >= cut - ABS(cut) * @tie_margin
    RETURN { k: PARSE_IDENTIFIER(r.id).key, s: r.s }
)"""


def khop_scores(
    user: str,
    *,
    hops: int,
    weights: Mapping[EdgeKind, float],
    min_rating: float,
    limit: int | None = None,
) -> AqlQuery:
    """Weighted path counts from the user's positive movies (store.py module doc), one row
    {found, rows: [{k, s}]}: raw sums, zero scores and seen movies dropped, cut near ``limit``
    when given (>= 1); the caller rounds, sorts and cuts exactly."""
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
        raise ValueError(f"khop_scores: hops must be 1, 2 or 3, got {hops!r}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"khop_scores: the AQL needs limit >= 1 or None, got {limit!r}")
    checked = check_hop_weights(weights)
    kinds = tuple(k for k in (*CONTENT_EDGES, EdgeKind.SIMILAR_TO) if k in checked)
    bind: dict[str, Any] = {
        "user": vertex_id(VertexKind.USER, user),
        "min_rating": float32_bound(min_rating),
        **{f"w_{k.value}": checked[k] for k in kinds},
    }
    if limit is not None:
        bind |= {"limit": int(limit), "tie_margin": TIE_MARGIN}
    hop_text = "".join(_hop(n, kinds) for n in range(1, hops + 1)) if kinds else ""
    levels = ", ".join(f"x{n}" for n in range(1, hops + 1)) if kinds else ""
    query = f"""LET found = DOCUMENT(@user) != null
LET x0 = (
  FOR e IN {EdgeKind.RATED.value}
    FILTER e._from == @user AND e.rating >= @min_rating
    COLLECT id = e._to
    RETURN {{ id: id, w: 1 }}
)
{_seen()}{hop_text}
LET scored = (
  FOR r IN FLATTEN([{levels}])
    COLLECT id = r.id AGGREGATE s = SUM(r.w)
    FILTER s != 0 AND NOT HAS(seen_set, id)
    RETURN {{ id: id, s: s }}
)
{_rows(limit)}
RETURN {{ found: found, rows: rows }}"""
    return query, bind
