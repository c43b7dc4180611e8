"""AQL text for the ArangoDB graph store, built as pure functions returning (query, bind_vars).

Every value a caller supplies (keys, ratings, weights, limits) travels as a bind variable; the
query text holds only fixed collection names taken from ``features.graph.schema`` and fixed
keywords. Keeping the builders pure lets the AQL be checked as text where no server runs.

Document keys: ArangoDB allows only a restricted alphabet in ``_key``; vertex keys are checked
against it here, and edge keys are derived from (src, dst) so that re-importing is idempotent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from features.graph.batch import GraphDataError
from features.graph.schema import (
    CONTENT_EDGES,
    EDGE_SPECS,
    PEOPLE_EDGES,
    USER_EDGES,
    EdgeKind,
    VertexKind,
)
from features.graph.store import check_hop_weights

AqlQuery = tuple[str, dict[str, Any]]

MAX_KEY_BYTES = 254
_KEY_RE = re.compile(r"[A-Za-z0-9_\-:.@()+,=;$!*'%]+")
_PLAIN_PART_RE = re.compile(r"[A-Za-z0-9_\-.@]+")

_DIRECTIONS = {"out": "OUTBOUND", "in": "INBOUND", "any": "ANY"}
MAX_HOPS = 3
# Traversals over anonymous graphs must declare their vertex collections on a cluster.
_WITH = "WITH " + ", ".join(k.value for k in VertexKind)


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an ArangoDB document key, or None when it can."""
    if not isinstance(key, str):
        return f"key must be a string, got {type(key).__name__}"
    if not key:
        return "key is empty"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"key is longer than {MAX_KEY_BYTES} bytes"
    if not _KEY_RE.fullmatch(key):
        bad = sorted({ch for ch in key if not _KEY_RE.fullmatch(ch)})
        return f"key {key!r} has characters ArangoDB does not allow: {''.join(bad)!r}"
    return None


def check_key(key: str, where: str) -> str:
    """Return ``key`` unchanged, or raise GraphDataError naming ``where`` and the problem."""
    problem = key_problem(key)
    if problem is not None:
        raise GraphDataError(f"{where}: {problem} (use features.graph.schema.slug)")
    return key


def edge_key(src: str, dst: str) -> str:
    """The edge ``_key`` for (src, dst): ``src:dst`` when both are plain, else a hash.

    Plain keys (letters, digits, ``_-.@``) contain no ':', so the readable form has exactly one
    ':'; the hashed form ``h:<sha1>:`` has two, so the two forms never collide.
    """
    if (
        _PLAIN_PART_RE.fullmatch(src)
        and _PLAIN_PART_RE.fullmatch(dst)
        and len(src) + len(dst) + 1 <= MAX_KEY_BYTES
    ):
        return f"{src}:{dst}"
    digest = hashlib.sha1(f"{src}\x00{dst}".encode()).hexdigest()
    return f"h:{digest}:"


def vertex_id(kind: VertexKind, key: str) -> str:
    """The ``_id`` ("collection/key") of a vertex."""
    return f"{kind.value}/{key}"


# --- Reads and writes of whole documents -------------------------------------------------------


def fetch_docs(collection: str, keys: list[str]) -> AqlQuery:
    """Stored documents (without _id and _rev) whose _key is in ``keys`` (primary index)."""
    query = 'FOR d IN @@collection FILTER d._key IN @keys RETURN UNSET(d, "_id", "_rev")'
    return query, {"@collection": collection, "keys": keys}


def existing_keys(collection: str, keys: list[str]) -> AqlQuery:
    """Which of ``keys`` exist in ``collection``."""
    query = "FOR d IN @@collection FILTER d._key IN @keys RETURN d._key"
    return query, {"@collection": collection, "keys": keys}


def write_docs(collection: str, docs: list[dict[str, Any]]) -> AqlQuery:
    """Insert ``docs``, replacing any stored document with the same _key (transactional)."""
    query = 'FOR d IN @docs INSERT d INTO @@collection OPTIONS { overwriteMode: "replace" }'
    return query, {"@collection": collection, "docs": docs}


def all_docs(collection: str) -> AqlQuery:
    """Every document of a collection, without _id and _rev."""
    return 'FOR d IN @@collection RETURN UNSET(d, "_id", "_rev")', {"@collection": collection}


def one_doc(collection: str, key: str) -> AqlQuery:
    """The document with ``key`` (zero or one row)."""
    query = 'FOR d IN @@collection FILTER d._key == @key LIMIT 1 RETURN UNSET(d, "_id", "_rev")'
    return query, {"@collection": collection, "key": key}


def counts() -> AqlQuery:
    """Number of documents in every vertex and edge collection, in one row."""
    names = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
    fields = ", ".join(f"{name}: LENGTH({name})" for name in names)
    return f"RETURN {{ {fields} }}", {}


# --- Traversals --------------------------------------------------------------------------------


def _edge_list(kinds: tuple[EdgeKind, ...]) -> str:
    return ", ".join(k.value for k in kinds)


def _seen_edges() -> str:
    return _edge_list(USER_EDGES)


def _hop(n: int, content: tuple[EdgeKind, ...], similar: bool) -> str:
    """One hop x{n} = H(x{n-1}), factored through the shared neighbour (see khop_scores)."""
    prev = f"x{n - 1}"
    parts: list[str] = []
    if content:
        edges = _edge_list(content)
        parts.append(f"""
  LET xw{n} = ZIP({prev}[*].id, {prev}[*].w)
  LET mids{n} = (
    FOR x IN {prev}
      FOR v, e, p IN 1..1 ANY x.id {edges}
        COLLECT mid = v._id, c = PARSE_IDENTIFIER(e._id).collection AGGREGATE t = SUM(x.w)
        RETURN {{ mid: mid, c: c, t: t }}
  )
  LET shared{n} = (
    FOR m IN mids{n}
      FOR v, e, p IN 1..1 ANY m.mid {edges}
        FILTER PARSE_IDENTIFIER(e._id).collection == m.c
        LET d = m.t - NOT_NULL(xw{n}[v._id], 0)
        FILTER d != 0
        RETURN {{ id: v._id, w: wmap[m.c] * d }}
  )""")
    else:
        parts.append(f"\n  LET shared{n} = []")
    if similar:
        parts.append(f"""
  LET sim{n} = (
    FOR x IN {prev}
      FOR v, e, p IN 1..1 ANY x.id {EdgeKind.SIMILAR_TO.value}
        FILTER v._id != x.id
        RETURN {{ id: v._id, w: @w_similar * x.w }}
  )""")
    else:
        parts.append(f"\n  LET sim{n} = []")
    body = "".join(parts)
    return f"""LET x{n} = ({body}
  FOR r IN APPEND(shared{n}, sim{n})
    COLLECT vid = r.id AGGREGATE w = SUM(r.w)
    FILTER w != 0
    RETURN {{ id: vid, w: w }}
)"""


def khop_scores(
    user: str, *, hops: int, weights: Mapping[EdgeKind, float], min_rating: float
) -> AqlQuery:
    """Weighted path counts from the user's positive movies (store.py module doc).

    Hop h computes x_h = H(x_{h-1}) in a LET subquery. The content part of H is factored through
    the shared neighbour v: for each (v, edge kind e), t_v = sum of x over movies e-linked to v;
    each movie j e-linked to v then gets w_e * (t_v - x_j), which equals sum_{i != j} x_i n_e(i, j)
    summed over v, while touching each edge once instead of every movie-v-movie path (genre hubs
    make path enumeration quadratic). similar_to edges are followed in both directions. The row
    holds ``found`` (the user exists) and ``rows`` [{k, s}] with zero scores and seen movies
    dropped; the caller sorts.
    """
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
        raise ValueError(f"khop_scores: hops must be 1, 2 or 3, got {hops!r}")
    checked = check_hop_weights(weights)
    content = tuple(k for k in CONTENT_EDGES if k in checked)
    similar = EdgeKind.SIMILAR_TO in checked
    bind: dict[str, Any] = {
        "user": vertex_id(VertexKind.USER, user),
        "min_rating": float(min_rating),
    }
    if content:
        bind["w"] = {k.value: checked[k] for k in content}
    if similar:
        bind["w_similar"] = checked[EdgeKind.SIMILAR_TO]
    hop_text = "\n".join(_hop(n, content, similar) for n in range(1, hops + 1))
    wmap = "@w" if content else "{}"
    all_hops = ", ".join(f"x{n}" for n in range(1, hops + 1))
    query = f"""{_WITH}
LET found = DOCUMENT(@user) != null
LET x0 = (
  FOR m, e, p IN 1..1 OUTBOUND @user {EdgeKind.RATED.value}
    FILTER e.rating >= @min_rating
    COLLECT vid = m._id
    RETURN {{ id: vid, w: 1 }}
)
LET seen = (
  FOR m, e, p IN 1..1 OUTBOUND @user {_seen_edges()}
    RETURN DISTINCT m._id
)
LET seen_set = ZIP(seen, seen)
LET wmap = {wmap}
{hop_text}
LET rows = (
  FOR r IN FLATTEN([{all_hops}])
    COLLECT vid = r.id AGGREGATE s = SUM(r.w)
    FILTER s != 0 AND NOT HAS(seen_set, vid)
    RETURN {{ k: PARSE_IDENTIFIER(vid).key, s: s }}
)
RETURN {{ found: found, rows: rows }}"""
    return query, bind


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
        "min_rating": float(min_rating),
    }
    return query, bind


def edge_endpoint_kinds(edge: EdgeKind) -> tuple[VertexKind, VertexKind]:
    """(source kind, target kind) of an edge kind."""
    spec = EDGE_SPECS[edge]
    return spec.src, spec.dst
