"""A Plex person's plex.tv watchlist, for the web cards: "Add to Plex watchlist" and the "On
your watchlist" badge, through plexapi's MyPlexAccount (addToWatchlist, watchlist).

A Marquee user is a Plex person when their graph key is ``ids.user_key`` of the person's name
(what the Plex sync writes). The owner acts with PLEX_TOKEN, a home user through the owner's
switchHomeUser; a friend's plex.tv account cannot be reached with the owner's token, so friends
have no watchlist here. A graph movie is found on plex.tv by the guid of the Plex library item
the sync mapped it to, else by a Discover title search matched on the year. Tokens are never
logged: errors go through ``plex_errors``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plexapi.exceptions import BadRequest
from plexapi.myplex import MyPlexAccount

from features.graph.schema import slug
from serving.plex.client import PlexError, PlexSettings, connect, plex_errors
from serving.plex.ids import MovieIndex, make_ref, user_key
from serving.plex.plextv import PlexTvSession

log = logging.getLogger(__name__)

PLEX_TV = "https://plex.tv"
PLEX_USER_PREFIX = "plex-"  # what ids.user_key puts before a Plex account's name


@dataclass(frozen=True)
class WatchlistMovie:
    """What finding a graph movie on plex.tv needs."""

    key: str
    title: str
    year: int | None = None
    rating_key: str | None = None  # the Plex library item the sync mapped it to, if any


class PlexWatchlists:
    """The watchlists of the server's owner and home users, read at most every ``ttl`` seconds
    per person (a page load does not call plex.tv each time); what this process adds shows at
    once."""

    def __init__(
        self,
        settings: PlexSettings,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, tuple[float, MyPlexAccount | None]] = {}
        self._keys: dict[str, tuple[float, set[str]]] = {}

    def _session(self) -> PlexTvSession:
        return PlexTvSession(self.settings.plextv_url)

    def account(self, user: str) -> MyPlexAccount | None:
        """The plex.tv account acting for graph user ``user``; None when they are not the owner
        or a home user. Raises PlexError when plex.tv cannot be asked."""
        if not user.startswith(PLEX_USER_PREFIX):  # not made by the Plex sync: no plex.tv call
            return None
        now = self._clock()
        with self._lock:
            known = self._accounts.get(user)
        if known is not None and (known[1] is not None or now - known[0] < self.ttl):
            return known[1]  # a "no" is asked again after ttl (a new home user, say)
        timeout = self.settings.timeout
        with plex_errors(PLEX_TV, "reading the owner's plex.tv account", timeout):
            owner = MyPlexAccount(
                token=self.settings.token, session=self._session(), timeout=timeout
            )
            found: MyPlexAccount | None = None
            if user_key(owner.username or owner.title or "") == user:
                found = owner
            else:
                for person in owner.users():
                    name = person.title or person.username or ""
                    if person.home and user_key(name) == user:
                        found = owner.switchHomeUser(person)
                        break
        with self._lock:
            self._accounts[user] = (now, found)
        return found

    def movies(self, user: str, index: Callable[[], MovieIndex]) -> set[str] | None:
        """Graph keys of the movies on ``user``'s watchlist that the graph holds (by IMDb id,
        TMDB id, else title and year); None when ``user`` has no reachable watchlist."""
        now = self._clock()
        with self._lock:
            cached = self._keys.get(user)
        if cached is not None and now - cached[0] < self.ttl:
            return set(cached[1])
        account = self.account(user)
        if account is None:
            return None
        with plex_errors(PLEX_TV, "reading the watchlist", self.settings.timeout):
            items = account.watchlist(libtype="movie")
        found = index()
        keys: set[str] = set()
        for item in items:
            item._autoReload = False  # an item without Guids would be re-read from plex.tv
            guids = [g.id for g in getattr(item, "guids", []) or []]
            ref = make_ref("", item.title, item.year, guids)
            key = found.find(ref)
            if key is not None:
                keys.add(key)
        with self._lock:
            self._keys[user] = (now, keys)
        return set(keys)

    def add(self, user: str, movie: WatchlistMovie) -> bool:
        """Put ``movie`` on ``user``'s watchlist: True when added, False when it was already
        there. Raises PlexError (not a Plex person, no such movie on plex.tv, plex.tv failing)."""
        account = self.account(user)
        if account is None:
            raise PlexError(f"{user} is not this Plex server's owner or a home user")
        item = self._find(account, movie)
        added = True
        with plex_errors(PLEX_TV, "adding to the watchlist", self.settings.timeout):
            try:
                account.addToWatchlist(item)
            except BadRequest as exc:  # plexapi checks first and refuses a movie already on it
                if "already on the watchlist" not in str(exc):
                    raise
                added = False
        with self._lock:
            cached = self._keys.get(user)
            if cached is not None:
                cached[1].add(movie.key)
        log.info("watchlist of %s: %s %s", user, movie.key, "added" if added else "already on")
        return added

    def _find(self, account: MyPlexAccount, movie: WatchlistMovie) -> Any:
        """plex.tv's item for the movie: the library item (its plex:// guid is plex.tv's id),
        else Discover's search result with the same title and year."""
        if movie.rating_key:
            try:
                server = connect(self.settings)
                with plex_errors(self.settings.url, "reading the library item"):
                    item = server.fetchItem(int(movie.rating_key))
                if str(item.guid or "").startswith("plex://movie/"):
                    return item
            except (PlexError, ValueError) as exc:
                log.warning("library item for %s not usable: %s", movie.key, exc)
        with plex_errors(PLEX_TV, "searching Discover", self.settings.timeout):
            results = account.searchDiscover(movie.title, limit=20, libtype="movie")
        wanted = slug(movie.title)
        same = [r for r in results if slug(r.title or "") == wanted]
        for r in same:
            if not movie.year or r.year == movie.year:
                return r
        when = f" ({movie.year})" if movie.year else ""
        raise PlexError(f"plex.tv has no movie {movie.title}{when} to put on the watchlist")
