"""The ArangoDB store's one-step lookups in AQL: co-people, neighbours, affinity, explanations.

Each query starts at one vertex (a movie or a user) and follows edges one step (or two, joined at
the shared vertex for explanations), so it touches a handful of edges per call. Every value a
caller supplies travels as a bind variable (see arango_aql). The k-hop walk is in
arango_khop_aql.
"""

from __future__ import annotations

from features.graph.arango_aql import WITH as _WITH
from features.graph.arango_aql import AqlQuery, float32_bound
from features.graph.arango_keys import vertex_id
from features.graph.schema import (
    CONTENT_EDGES,
    PEOPLE_EDGES,
    EdgeKind,
    VertexKind,
)

_DIRECTIONS = {"out": "OUTBOUND", "in": "INBOUND", "any": "ANY"}


def _edge_list(kinds: tuple[EdgeKind, ...]) -> str:
    return ", ".join(k.value for k in kinds)


def co_people(movie: str, *, min_shared: int) -> AqlQuery:
    """Other movies sharing >= min_shared distinct people with ``movie``: rows [{k, n}]."""
    edges = _edge_list(PEOPLE_EDGES)
    query = f"""{_WITH}
LET found = DOCUMENT(@movie) != null
LET rows = (
  FOR p, e1, p1 IN 1..1 INBOUND @movie {edges}
    COLLECT pid = p._id
    FOR m, e2, p2 IN 1..1 OUTBOUND pid {edges}
      FILTER m._id != @movie
      COLLECT k = m._key AGGREGATE n = COUNT_DISTINCT(pid)
      FILTER n >= @min_shared
      RETURN {{ k: k, n: n }}
)
RETURN {{ found: found, rows: rows }}"""
    return query, {"movie": vertex_id(VertexKind.MOVIE, movie), "min_shared": int(min_shared)}


def neighbours(kind: VertexKind, key: str, edge: EdgeKind, direction: str) -> AqlQuery:
    """Vertices one ``edge`` away, with the edge's attributes: rows [{id, out, attrs}], ``out``
    telling whether the edge leaves the start vertex."""
    if direction not in _DIRECTIONS:
        raise ValueError(f"neighbours: direction must be 'out', 'in' or 'any', got {direction!r}")
    query = f"""{_WITH}
LET found = DOCUMENT(@start) != null
LET rows = (
  FOR v, e, p IN 1..1 {_DIRECTIONS[direction]} @start @@edge
    RETURN {{
      id: v._id,
      out: e._from == @start,
      attrs: UNSET(e, "_id", "_key", "_rev", "_from", "_to")
    }}
)
RETURN {{ found: found, rows: rows }}"""
    return query, {"start": vertex_id(kind, key), "@edge": EdgeKind(edge).value}


def user_affinity(user: str) -> AqlQuery:
    """Per-genre and per-person sums of (rating - 3) / 2 over the user's rated movies.

    (AQL variable names must differ from collection names, hence ``by_genre``, not ``genres``.)

    Rated edges without a rating (null) are left out, also from ``n``. Row:
    {found, n, genres: [{k, s}], people: [{k, s}]}; the caller divides by n.
    """
    people = _edge_list(PEOPLE_EDGES)
    query = f"""{_WITH}
LET found = DOCUMENT(@user) != null
LET scored = (
  FOR m, e, p IN 1..1 OUTBOUND @user {EdgeKind.RATED.value}
    FILTER IS_NUMBER(e.rating)
    RETURN {{ id: m._id, w: (e.rating - 3) / 2 }}
)
LET by_genre = (
  FOR r IN scored
    FOR g, e, p IN 1..1 OUTBOUND r.id {EdgeKind.IN_GENRE.value}
      COLLECT k = g._key AGGREGATE s = SUM(r.w)
      RETURN {{ k: k, s: s }}
)
LET by_person = (
  FOR r IN scored
    LET ps = (FOR q, e, p IN 1..1 INBOUND r.id {people} RETURN DISTINCT q._key)
    FOR k IN ps
      COLLECT pk = k AGGREGATE s = SUM(r.w)
      RETURN {{ k: pk, s: s }}
)
RETURN {{ found: found, n: LENGTH(scored), genres: by_genre, people: by_person }}"""
    return query, {"user": vertex_id(VertexKind.USER, user)}


def explain_paths(user: str, movie: str, *, min_rating: float) -> AqlQuery:
    """Every seed -[edge]- via -[edge]- movie path (and seed -[similar_to]- movie) for a user.

    Seeds are the user's movies rated >= min_rating, other than ``movie``. The content paths are
    joined at the shared neighbour: the target's neighbours are looked up by (kind, vertex) from
    each seed's neighbours, so genre hubs are never enumerated. The caller picks the best path.
    """
    content = _edge_list(CONTENT_EDGES)
    query = f"""{_WITH}
LET user_found = DOCUMENT(@user) != null
LET target = DOCUMENT(@movie)
LET seeds = (
  FOR m, e, p IN 1..1 OUTBOUND @user {EdgeKind.RATED.value}
    FILTER e.rating >= @min_rating AND m._id != @movie
    RETURN {{ id: m._id, key: m._key, title: m.title, rating: e.rating, ts: e.timestamp }}
)
LET seed_ids = ZIP(seeds[*].id, seeds[*].key)
LET similar = (
  FOR v, e, p IN 1..1 ANY @movie {EdgeKind.SIMILAR_TO.value}
    FILTER HAS(seed_ids, v._id)
    RETURN DISTINCT {{ seed: v._id, edge: "{EdgeKind.SIMILAR_TO.value}", via: null, name: "" }}
)
LET target_links = (
  FOR v, e, p IN 1..1 ANY @movie {content}
    RETURN {{ k: CONCAT(PARSE_IDENTIFIER(e._id).collection, "|", v._id), n: NOT_NULL(v.name, "") }}
)
LET target_vias = ZIP(target_links[*].k, target_links[*].n)
LET shared = (
  FOR s IN seeds
    FOR v, e, p IN 1..1 ANY s.id {content}
      LET c = PARSE_IDENTIFIER(e._id).collection
      FILTER HAS(target_vias, CONCAT(c, "|", v._id))
      RETURN {{ seed: s.id, edge: c, via: v._id, name: target_vias[CONCAT(c, "|", v._id)] }}
)
RETURN {{
  user_found: user_found,
  movie_found: target != null,
  movie_title: NOT_NULL(target.title, ""),
  seeds: seeds,
  paths: APPEND(similar, shared)
}}"""
    bind = {
        "user": vertex_id(VertexKind.USER, user),
        "movie": vertex_id(VertexKind.MOVIE, movie),
        "min_rating": float32_bound(min_rating),
    }
    return query, bind
