"""What a recommendation card shows: poster, title, year, match %, the reason and its graph path,
badges. Also the movie page's "more like this" (movies sharing people or genres in the graph).

Built from the same ``present`` output as the JSON API, so a card says what the API says.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import Explanation, GraphStore, UnknownVertexError
from serving.schemas.recommendations import RecommendedMovie

EDGE_WORDS = {
    EdgeKind.DIRECTED: "directed by",
    EdgeKind.WROTE: "written by",
    EdgeKind.ACTED_IN: "with",
    EdgeKind.TAGGED: "tagged",
    EdgeKind.IN_GENRE: "genre",
    EdgeKind.SIMILAR_TO: "similar to",
}
PEOPLE_EDGES = (EdgeKind.DIRECTED, EdgeKind.WROTE, EdgeKind.ACTED_IN)


@dataclass(frozen=True)
class Card:
    """One card on a page."""

    movie: str
    title: str
    year: int | None
    match: int | None  # percent; None on browse cards (not ranked for the user)
    reason: str
    path: tuple[str, ...]  # seed title, edge words + via name, the movie: read left to right
    badges: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    recommendation_id: str = ""
    arm: str = ""
    rating: float | None = None  # the user's own rating, shown on the stars (browse cards)

    @property
    def stars(self) -> int:
        """How many of the five stars the user's rating fills (0: not rated)."""
        return round(self.rating) if self.rating else 0

    @property
    def poster_src(self) -> str:
        return f"/posters/{self.movie}"


def match_percent(score: float) -> int:
    """A score (raw e_i . a, or a popularity score) as 1-99 %: the logistic of the score."""
    if not math.isfinite(score):
        return 50
    return max(1, min(99, round(100 / (1 + math.exp(-score)))))


def graph_path(path: Explanation | None) -> tuple[str, ...]:
    """The explanation path as readable steps, e.g. ("Alien", "directed by Ridley Scott",
    "Blade Runner"); () when there is none."""
    if path is None:
        return ()
    if path.edge is EdgeKind.SIMILAR_TO:
        return (path.seed_title, "similar to", path.movie_title)
    return (path.seed_title, f"{EDGE_WORDS[path.edge]} {path.via_name}", path.movie_title)


def genres_of(vertex: dict[str, object] | None) -> tuple[str, ...]:
    raw = str((vertex or {}).get("genres") or "")
    return tuple(g for g in raw.split("|") if g)


def cards(
    store: GraphStore,
    user: str,
    items: Sequence[RecommendedMovie],
    known: bool,
    library: Collection[str] = (),
    watchlist: Collection[str] = (),
) -> list[Card]:
    """One card per presented movie, with its graph path when the user has one."""
    paths: list[Explanation | None] = [None] * len(items)
    if known and items:
        with contextlib.suppress(UnknownVertexError):
            paths = store.explain_many(user, [i.movie for i in items])
    out = []
    for item, path in zip(items, paths, strict=True):
        badges = []
        if item.movie in library:
            badges.append("In your library")
        if item.movie in watchlist:
            badges.append("On your watchlist")
        out.append(
            Card(
                movie=item.movie,
                title=item.title,
                year=item.year,
                match=match_percent(item.score),
                reason=item.explanation,
                path=graph_path(path),
                badges=tuple(badges),
                genres=genres_of(store.vertex(VertexKind.MOVIE, item.movie)),
                recommendation_id=item.recommendation_id,
                arm=item.arm,
            )
        )
    return out


def browse_cards(
    store: GraphStore,
    user: str,
    rows: Sequence[tuple[str, str, int, str, int]],
    ratings: dict[str, float],
    watched: Collection[str],
    library: Collection[str] = (),
    watchlist: Collection[str] = (),
) -> list[Card]:
    """Cards for catalogue rows (key, title, year, genres, liked): the graph path from what
    the user liked when there is one, else how many people liked it; what the user has seen
    is badged."""
    keys = [r[0] for r in rows]
    paths: list[Explanation | None] = [None] * len(keys)
    with contextlib.suppress(UnknownVertexError):
        paths = store.explain_many(user, keys) if keys else []
    out = []
    for (key, title, year, genres, liked), path in zip(rows, paths, strict=True):
        badges = []
        if key in ratings:
            badges.append(f"You rated it {ratings[key]:g} of 5")
        elif key in watched:
            badges.append("Seen")
        if key in library:
            badges.append("In your library")
        if key in watchlist:
            badges.append("On your watchlist")
        if path is not None:
            reason = path.text
        elif liked:
            reason = f"Liked by {liked} {'person' if liked == 1 else 'people'}."
        else:
            reason = "In the catalogue; nobody has rated it highly yet."
        out.append(
            Card(
                movie=key,
                title=title,
                year=year or None,
                match=None,
                reason=reason,
                path=graph_path(path),
                badges=tuple(badges),
                genres=tuple(g for g in genres.split("|") if g),
                rating=ratings.get(key),
            )
        )
    return out


@dataclass
class Similar:
    """A movie like another, and what they share."""

    movie: str
    title: str
    year: int | None
    score: float
    shared: list[str] = field(default_factory=list)

    @property
    def poster_src(self) -> str:
        return f"/posters/{self.movie}"

    @property
    def reason(self) -> str:
        return "Shares " + ", ".join(self.shared[:3]) if self.shared else "Similar"


def more_like_this(store: GraphStore, movie: str, limit: int = 8) -> list[Similar]:
    """Movies one shared vertex away: a shared person counts 3, a shared genre 1, a similar_to
    edge 5. Ties by key. What they share is named, people first."""
    score: Counter[str] = Counter()
    shared: dict[str, list[str]] = {}

    def add(other: str, weight: float, label: str) -> None:
        if other == movie:
            return
        score[other] += weight  # type: ignore[assignment]
        shared.setdefault(other, []).append(label)

    for n in store.neighbours(VertexKind.MOVIE, movie, EdgeKind.SIMILAR_TO, "any"):
        add(n.key, 5, "a similar_to link")
    for edge in PEOPLE_EDGES:
        for person in store.neighbours(VertexKind.MOVIE, movie, edge, "in"):
            name = str((store.vertex(VertexKind.PERSON, person.key) or {}).get("name") or "")
            for other in store.neighbours(VertexKind.PERSON, person.key, edge, "out"):
                add(other.key, 3, f"{EDGE_WORDS[edge]} {name or person.key}")
    for genre in store.neighbours(VertexKind.MOVIE, movie, EdgeKind.IN_GENRE, "out"):
        others = store.neighbours(VertexKind.GENRE, genre.key, EdgeKind.IN_GENRE, "in")
        if len(others) > 2000:  # a genre that large says little; skip the walk
            continue
        name = str((store.vertex(VertexKind.GENRE, genre.key) or {}).get("name") or genre.key)
        for other in others:
            add(other.key, 1, f"genre {name}")
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    out = []
    for key, value in ranked:
        v = store.vertex(VertexKind.MOVIE, key) or {}
        year = int(v.get("year") or 0)  # type: ignore[call-overload]
        out.append(Similar(key, str(v.get("title") or key), year or None, value, shared[key]))
    return out
