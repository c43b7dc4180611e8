"""The GraphStore interface that the embedded and the ArangoDB stores both implement.

The traversal semantics are defined here, once, so that both stores answer identically (a
contract test suite in tests/features/test_store_contract.py checks them):

Seeds and seen movies
    A user's *positive* movies are those they rated >= ``min_rating`` (default 4.0). A user's
    *seen* movies are all movies with a ``rated``, ``watched`` or ``not_interested`` edge from them.

One hop (movie to movie)
    For a vector x over movies, ``H(x)[j] = sum_e w_e * sum_{i != j} x[i] * n_e(i, j)`` where,
    for a content edge kind e (acted_in, directed, wrote, in_genre, tagged), ``n_e(i, j)`` is the
    number of vertices v linked by an e-edge to both i and j, and for ``similar_to``, the number
    of similar_to edges between i and j in either direction. Each edge counts once, whatever its
    attributes; kinds absent from the weight map are not followed.

k-hop path counts
    ``score = sum_{h=1..hops} H^h(s)`` with s = 1 on each positive movie, 0 elsewhere; seen
    movies are dropped, as are movies scoring 0. Results are sorted by score descending, then key
    ascending.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import CONTENT_EDGES, EdgeKind, VertexKind

Direction = Literal["out", "in", "any"]


class GraphStoreError(RuntimeError):
    """A store failed to do what was asked (server unreachable, write refused, ...)."""


class UnknownVertexError(KeyError):
    """A query named a vertex the graph does not hold."""

    def __init__(self, kind: VertexKind, key: str) -> None:
        super().__init__(f"no {kind.value} vertex with key {key!r}")
        self.kind = kind
        self.key = key

    def __str__(self) -> str:  # KeyError quotes its argument; say it plainly instead
        return str(self.args[0])


@dataclass(frozen=True)
class Neighbour:
    """A vertex reached over one edge, with that edge's attributes."""

    kind: VertexKind
    key: str
    attrs: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Affinity:
    """A user's affinity per genre key and per person key.

    With w_m = (rating - 3) / 2 for each movie m the user rated and n the number of rated
    movies: genre[g] = sum of w_m over rated movies in g, divided by n; people[p] likewise over
    movies p acted in, directed or wrote (each person once per movie). Zero entries are omitted.
    """

    genres: dict[str, float]
    people: dict[str, float]


@dataclass(frozen=True)
class Explanation:
    """Why a movie is recommended to a user: one path from a movie they liked.

    The path is seed movie -[edge]- via vertex -[edge]- movie (or seed -[similar_to]- movie,
    with ``via_key`` empty). Choice among paths: edge kind in EXPLANATION_PRIORITY order (the
    most specific first); then the seed's rating (higher first), its timestamp (newer
    first), the seed key, the via key (ascending).
    """

    user: str
    movie: str
    movie_title: str
    seed: str
    seed_title: str
    seed_rating: float
    edge: EdgeKind
    via_kind: VertexKind | None
    via_key: str
    via_name: str

    @property
    def text(self) -> str:
        """One sentence a person can read. A via vertex without a real name (a Freebase
        entity keyed "m.0abc") is named by its kind only: "has the same director"."""
        liked = f"You rated {self.seed_title} {self.seed_rating:g}/5"
        if self.edge is EdgeKind.SIMILAR_TO:
            return f"{liked}; {self.movie_title} is similar to it."
        phrase = f"{self.movie_title} has {_SAME[self.edge]}"
        if not is_machine_name(self.via_name):
            phrase += f", {self.via_name}"
        return f"{liked}; {phrase}."


_SAME: dict[EdgeKind, str] = {
    EdgeKind.DIRECTED: "the same director",
    EdgeKind.WROTE: "the same writer",
    EdgeKind.ACTED_IN: "the same actor",
    EdgeKind.PRODUCED: "the same producer",
    EdgeKind.SHOT: "the same cinematographer",
    EdgeKind.COMPOSED: "the same composer",
    EdgeKind.TAGGED: "the same tag",
    EdgeKind.MADE_BY: "the same production company",
    EdgeKind.IN_GENRE: "the same genre",
    EdgeKind.FROM_COUNTRY: "the same country",
    EdgeKind.IN_LANGUAGE: "the same language",
}
_MACHINE_ID = re.compile(r"^[mg][._][0-9a-z_]{2,}$")


def is_machine_name(name: str) -> bool:
    """True when ``name`` names nothing a person knows: empty, or a Freebase machine id
    ("m.0abc", "g.11b...", or its key form "m_0abc")."""
    name = name.strip()
    return not name or bool(_MACHINE_ID.match(name))


# Most specific first: a shared person or tag explains more than a shared genre or country.
EXPLANATION_PRIORITY: tuple[EdgeKind, ...] = (
    EdgeKind.SIMILAR_TO,
    EdgeKind.DIRECTED,
    EdgeKind.WROTE,
    EdgeKind.ACTED_IN,
    EdgeKind.COMPOSED,
    EdgeKind.SHOT,
    EdgeKind.PRODUCED,
    EdgeKind.TAGGED,
    EdgeKind.MADE_BY,
    EdgeKind.IN_GENRE,
    EdgeKind.FROM_COUNTRY,
    EdgeKind.IN_LANGUAGE,
)


@dataclass(frozen=True)
class UpsertReport:
    """How many vertices and edges an upsert created or changed, per collection."""

    created: dict[str, int]
    updated: dict[str, int]

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())


@dataclass(frozen=True)
class UserMovies:
    """What one user did with movies: the movies they rated (keys, ratings, timestamps, in the
    store's order) and the movies they watched or dismissed (``SEEN_EDGES``)."""

    rated: npt.NDArray[np.object_]
    ratings: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.float64]
    seen: npt.NDArray[np.object_]


SEEN_EDGES: tuple[EdgeKind, ...] = (EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)

FOLLOWABLE_EDGES: tuple[EdgeKind, ...] = (*CONTENT_EDGES, EdgeKind.SIMILAR_TO)


def check_hop_weights(weights: Mapping[EdgeKind, float]) -> dict[EdgeKind, float]:
    """The k-hop weight map every store accepts: only movie-to-movie kinds, finite weights;
    zero weights are dropped (a kind with weight 0 is not followed)."""
    out: dict[EdgeKind, float] = {}
    for kind, weight in weights.items():
        ekind = EdgeKind(kind)
        if ekind not in FOLLOWABLE_EDGES:
            raise ValueError(
                f"khop weights: edge kind {ekind.value!r} cannot be followed from movie to "
                f"movie; use {sorted(k.value for k in FOLLOWABLE_EDGES)}"
            )
        if not math.isfinite(weight):
            raise ValueError(f"khop weights: weight of {ekind.value!r} is not finite: {weight!r}")
        if weight != 0:
            out[ekind] = float(weight)
    return out


@runtime_checkable
class GraphStore(Protocol):
    """What every graph store offers. Keys are strings; kinds name collections.

    ``user_movies``, ``explain_many`` and ``revision`` have defaults written on the other
    methods; a store that subclasses GraphStore inherits them and may override them with a
    faster path of its own (the embedded store reads its arrays)."""

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        """Apply a batch atomically: all of it or none. Edges must end at vertices that exist
        in the store or in the batch, else GraphDataError names the first dangling one and the
        store is unchanged. Upserting the same batch twice changes nothing the second time."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of vertices and edges per collection name (every kind listed, zeros too)."""
        ...

    def vertex(self, kind: VertexKind, key: str) -> dict[str, object] | None:
        """One vertex's attributes (with ``key``), or None."""
        ...

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame:
        """All vertices of a kind: ``key`` plus attribute columns, sorted by key."""
        ...

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        """All edges of a kind: ``src``, ``dst`` plus attribute columns, sorted by (src, dst)."""
        ...

    def khop_scores(
        self,
        user: str,
        *,
        hops: int = 3,
        weights: Mapping[EdgeKind, float] | None = None,
        min_rating: float = 4.0,
        limit: int | None = None,
    ) -> list[tuple[str, float]]:
        """Weighted path counts from the user's positive movies to unseen movies (module doc).
        ``weights`` defaults to schema.DEFAULT_HOP_WEIGHTS; hops is 1, 2 or 3."""
        ...

    def co_people(
        self, movie: str, *, min_shared: int = 2, limit: int | None = 20
    ) -> list[tuple[str, int]]:
        """Other movies sharing at least ``min_shared`` distinct people (actors, directors,
        writers) with ``movie``: (movie key, shared count), count descending then key."""
        ...

    def neighbours(
        self, kind: VertexKind, key: str, edge: EdgeKind, direction: Direction = "any"
    ) -> list[Neighbour]:
        """Vertices one ``edge`` away from (kind, key), sorted by (kind, key). ``out`` follows
        src->dst, ``in`` dst->src."""
        ...

    def user_affinity(self, user: str) -> Affinity:
        """The user's genre and people affinities (see Affinity)."""
        ...

    def explain(self, user: str, movie: str) -> Explanation | None:
        """The best explanation path from one of the user's positive movies to ``movie``,
        or None when there is none."""
        ...

    def close(self) -> None:
        """Release connections or files."""
        ...

    def user_movies(self, user: str) -> UserMovies:
        """The user's rated, watched and dismissed movies; UnknownVertexError for an unknown
        user. Default: through ``neighbours``."""
        rated = self.neighbours(VertexKind.USER, user, EdgeKind.RATED, "out")
        seen = [
            nb.key
            for edge in SEEN_EDGES
            for nb in self.neighbours(VertexKind.USER, user, edge, "out")
        ]
        return UserMovies(
            rated=np.array([nb.key for nb in rated], dtype=object),
            ratings=np.array([_number(nb.attrs.get("rating")) for nb in rated], dtype=np.float64),
            timestamps=np.array(
                [_number(nb.attrs.get("timestamp")) for nb in rated], dtype=np.float64
            ),
            seen=np.array(seen, dtype=object),
        )

    def explain_many(self, user: str, movies: list[str]) -> list[Explanation | None]:
        """``explain`` for each movie: None for an unknown movie or one without a path;
        UnknownVertexError for an unknown user. Default: one ``explain`` call per movie."""
        out: list[Explanation | None] = []
        for movie in movies:
            try:
                out.append(self.explain(user, movie))
            except UnknownVertexError as exc:
                if exc.kind is VertexKind.USER:
                    raise
                out.append(None)
        return out

    def revision(self) -> object | None:
        """A token that changes whenever the graph changes (compared by identity), or None
        when the store cannot tell; caches of what was read from the store key on it."""
        return None

    def warm_reads(self) -> None:
        """Build now what a request's first reads would build lazily (key indexes, link
        tables), so that a serving process pays for it at its start, not in its first
        requests. Default: nothing to build."""


def _number(value: object) -> float:
    """An optional numeric edge attribute as a float (missing or empty: 0)."""
    return float(value or 0.0)  # type: ignore[arg-type]
