"""How a slate is shown: title, year, poster and a reason for each movie, for HTTP and Plex.

The reason is a graph path from a movie the user liked (``GraphStore.explain_many``) when
there is one, else the recommender's own (for example "Popular in Comedy"). ``present`` reads
the store for every slate; ``Presenter`` (the API's) answers the same from what it read
before while the graph is unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from features.graph.schema import VertexKind
from features.graph.store import Explanation, GraphStore, UnknownVertexError
from serving.ab import Arm
from serving.interleaved import team_version_key
from serving.recommender import RecommendationResult
from serving.schemas.recommendations import RecommendedMovie

log = logging.getLogger(__name__)


def explanations(store: GraphStore, user: str, movies: list[str]) -> list[Explanation | None]:
    """A path for each movie (None where there is none or the user is unknown)."""
    try:
        return store.explain_many(user, movies)
    except UnknownVertexError:  # unknown user: no graph path to show
        return [None] * len(movies)


@dataclass(frozen=True)
class MovieCard:
    """What a slate shows of a movie from the graph: title (its key when it has none), year
    and poster URL (None when missing)."""

    title: str
    year: int | None
    poster_url: str | None


def movie_card(store: GraphStore, movie: str) -> MovieCard:
    found = store.vertex(VertexKind.MOVIE, movie) or {}
    year = int(found.get("year") or 0)  # type: ignore[call-overload]
    return MovieCard(
        title=str(found.get("title") or movie),
        year=year or None,
        poster_url=str(found.get("poster_url") or "") or None,
    )


def present(
    store: GraphStore, user: str, result: RecommendationResult, rec_id: str, arm: Arm, known: bool
) -> list[RecommendedMovie]:
    """Attach title, year, poster and an explanation (a graph path when there is one)."""
    movies = [i.movie for i in result.items]
    paths = explanations(store, user, movies) if known else [None] * len(movies)
    texts = [p.text if p is not None else None for p in paths]
    return _items(result, rec_id, arm, [movie_card(store, m) for m in movies], texts)


def _items(
    result: RecommendationResult,
    rec_id: str,
    arm: Arm,
    cards: list[MovieCard],
    paths: list[str | None],
) -> list[RecommendedMovie]:
    """The slate's items from each movie's card and path text (None: no graph path)."""
    out: list[RecommendedMovie] = []
    for rank, (item, card, path) in enumerate(zip(result.items, cards, paths, strict=True), 1):
        out.append(
            RecommendedMovie(
                rank=rank,
                movie=item.movie,
                title=card.title,
                year=card.year,
                poster_url=card.poster_url,
                score=item.score,
                propensity=item.propensity,
                explanation=path if path is not None else (item.reason or "Recommended for you."),
                recommendation_id=rec_id,
                policy_version=(
                    result.extra.get(team_version_key(item.team), result.policy_version)
                    if item.team
                    else result.policy_version
                ),
                arm=item.team or arm.name,  # interleaved: the team that put it on the slate
            )
        )
    return out


@dataclass
class _UserPaths:
    known: bool  # the user is a vertex of the graph (else no path is looked for)
    paths: dict[str, str | None] = field(default_factory=dict)  # movie -> path text


@dataclass
class PresenterStats:
    """Movies shown from what was read before (``cached``) and read from the store (``read``:
    an explanation looked for, a card read, or both)."""

    cached: int = 0
    read: int = 0


class Presenter:
    """``present`` for one store, keeping what it reads: each movie's card, whether a user is
    a vertex, each (user, movie) path text. All of these are functions of the graph alone, so
    they are kept while the store's ``revision`` is the same object and all dropped at the
    first request that sees another (a store without a revision is read every time, as by
    ``present``). Known users are kept up to ``users`` (least recently served leave first,
    with their paths) and (user, movie) paths up to ``paths`` in all (about 225 bytes each:
    100K paths are some 22 MB), cards up to ``movies`` (about 370 bytes each); unknown users
    are not kept (a stream of new names would push known ones out), so their only read is the
    user lookup."""

    def __init__(
        self,
        store: GraphStore,
        *,
        users: int = 10_000,
        paths: int = 100_000,
        movies: int = 20_000,
    ) -> None:
        if users < 1 or movies < 1 or paths < 1:
            raise ValueError(
                f"caps must be >= 1, got {users} users, {paths} paths, {movies} movies"
            )
        self.store = store
        self.max_users = users
        self.max_paths = paths
        self.max_movies = movies
        self._paths = 0  # (user, movie) paths kept
        self.stats = PresenterStats()
        self._token: object = None  # the revision the tables below were read at
        self._users: OrderedDict[str, _UserPaths] = OrderedDict()
        self._cards: OrderedDict[str, MovieCard] = OrderedDict()
        self._lock = threading.Lock()

    def present(
        self, user: str, result: RecommendationResult, rec_id: str, arm: Arm
    ) -> list[RecommendedMovie]:
        """``present(store, user, result, rec_id, arm, known)``, ``known`` being whether the
        user is a vertex of the graph: equal to it."""
        store = self.store
        token = store.revision()
        movies = [i.movie for i in result.items]
        if token is None:
            known = store.vertex(VertexKind.USER, user) is not None
            return present(store, user, result, rec_id, arm, known)
        with self._lock:
            if token is not self._token:
                self._users.clear()
                self._cards.clear()
                self._paths = 0
                self._token = token
            entry = self._users.get(user)
            paths = dict(entry.paths) if entry is not None else {}
            cards = {}
            for m in movies:
                card = self._cards.get(m)
                if card is not None:
                    cards[m] = card
                    self._cards.move_to_end(m)
        if entry is None:
            entry = _UserPaths(known=store.vertex(VertexKind.USER, user) is not None)
        missing = [m for m in dict.fromkeys(movies) if m not in paths] if entry.known else []
        found = explanations(store, user, missing) if missing else []
        new_paths = {
            m: p.text if p is not None else None for m, p in zip(missing, found, strict=True)
        }
        new_cards = {m: movie_card(store, m) for m in dict.fromkeys(movies) if m not in cards}
        paths.update(new_paths)
        cards.update(new_cards)
        self._keep(token, user, entry, new_paths, new_cards, len(movies))
        texts = [paths.get(m) for m in movies]
        return _items(result, rec_id, arm, [cards[m] for m in movies], texts)

    def _keep(
        self,
        token: object,
        user: str,
        entry: _UserPaths,
        paths: dict[str, str | None],
        cards: dict[str, MovieCard],
        shown: int,
    ) -> None:
        """Add what a request read, unless the graph changed since it read ``token``."""
        with self._lock:
            self.stats.read += len(set(paths) | set(cards))
            self.stats.cached += shown - len(set(paths) | set(cards))
            if token is not self._token:
                return
            if entry.known:
                kept = self._users.get(user)
                if kept is None:  # new, or dropped since this request looked
                    kept = self._users[user] = _UserPaths(known=True)
                before = len(kept.paths)
                kept.paths.update(paths)
                self._paths += len(kept.paths) - before
                self._users.move_to_end(user)
                while len(self._users) > 1 and (
                    len(self._users) > self.max_users or self._paths > self.max_paths
                ):
                    self._paths -= len(self._users.popitem(last=False)[1].paths)
            for movie, card in cards.items():
                self._cards[movie] = card
                self._cards.move_to_end(movie)
            while len(self._cards) > self.max_movies:
                self._cards.popitem(last=False)
