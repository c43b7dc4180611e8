"""What the web pages hold per app: the Jinja2 templates, the poster service, the Plex
library's movie keys (for the "In your library" badge) and the plex.tv watchlists (the "On your
watchlist" badge and button, when Plex is configured). Built on first use from the app's
settings and kept on ``app.state.web``; tests override ``get_site`` like any dependency."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from features.graph.schema import VertexKind
from features.graph.store import GraphStore
from serving.deps import ServicesDep
from serving.plex.client import PlexError, PlexSettings
from serving.plex.ids import MovieIndex
from serving.plex.state import PlexStateError, load_state, state_path
from serving.plex.watchlist import PlexWatchlists, WatchlistMovie
from serving.posters import PlexPosters, PosterService, PosterSource, TmdbPosters, UrlPosters
from serving.settings import Settings
from serving.web.browse import CatalogueCache

log = logging.getLogger(__name__)

WEB_DIR = Path(str(resources.files("serving").joinpath("web")))
_build_lock = threading.Lock()


@dataclass
class Site:
    templates: Jinja2Templates
    posters: PosterService
    plex_state: Path
    watchlists: PlexWatchlists | None = None
    catalogue: CatalogueCache = field(default_factory=CatalogueCache)

    def plex_keys(self) -> dict[str, str]:
        """ratingKey -> graph movie key from the Plex sync's state ({} without one)."""
        if not self.plex_state.exists():
            return {}
        try:
            return dict(load_state(self.plex_state).movie_keys)
        except PlexStateError as exc:
            log.warning("%s", exc)
            return {}

    def library(self) -> set[str]:
        return set(self.plex_keys().values())

    def rating_key_of(self, movie: str) -> str | None:
        """The Plex library's ratingKey the sync mapped to this graph movie, if any."""
        return next((rk for rk, key in self.plex_keys().items() if key == movie), None)

    def watchlist(self, user: str, store: GraphStore) -> set[str] | None:
        """Graph keys on ``user``'s Plex watchlist; None when they have none here (Plex not
        configured, not the owner or a home user, or plex.tv not answering: logged)."""
        if self.watchlists is None:
            return None
        try:
            return self.watchlists.movies(user, lambda: MovieIndex.from_store(store))
        except PlexError as exc:
            log.warning("no watchlist for %s: %s", user, exc)
            return None

    def add_to_watchlist(self, user: str, store: GraphStore, movie: str) -> bool:
        """Put a graph movie on ``user``'s Plex watchlist (False: it was there). Raises
        PlexError, also when Plex is not configured."""
        if self.watchlists is None:
            raise PlexError("Plex is not configured (PLEX_URL, PLEX_TOKEN)")
        v = store.vertex(VertexKind.MOVIE, movie) or {}
        want = WatchlistMovie(
            key=movie,
            title=str(v.get("title") or movie),
            year=int(v.get("year") or 0) or None,  # type: ignore[call-overload]
            rating_key=self.rating_key_of(movie),
        )
        return self.watchlists.add(user, want)


def build_site(settings: Settings) -> Site:
    home = settings.home_dir()
    client = httpx.Client(timeout=settings.poster_timeout_seconds, follow_redirects=True)
    plex_state = state_path(home)
    holder: dict[str, Site] = {}

    def rating_key_of(movie: str) -> str | None:
        return holder["site"].rating_key_of(movie)

    sources: list[PosterSource] = []
    watchlists = None
    if settings.plex_url and settings.plex_token is not None:
        plex = PlexSettings(
            settings.plex_url,
            settings.plex_token.get_secret_value(),
            timeout=settings.poster_timeout_seconds,
            plextv_url=settings.plex_tv_url,
        )
        watchlists = PlexWatchlists(plex)
        sources.append(
            PlexPosters(
                client, settings.plex_url, settings.plex_token.get_secret_value(), rating_key_of
            )
        )
    if settings.tmdb_api_key is not None:
        sources.append(
            TmdbPosters(
                client,
                settings.tmdb_api_key.get_secret_value(),
                settings.tmdb_api_url,
                settings.tmdb_image_url,
            )
        )
    sources.append(UrlPosters(client))
    cache = settings.poster_dir or home.root / "posters"
    site = Site(
        templates=Jinja2Templates(directory=str(WEB_DIR / "templates")),
        posters=PosterService(sources, cache),
        plex_state=plex_state,
        watchlists=watchlists,
    )
    holder["site"] = site
    return site


async def get_site(request: Request, services: ServicesDep) -> Site:
    site: Site | None = getattr(request.app.state, "web", None)
    if site is None:
        with _build_lock:
            site = getattr(request.app.state, "web", None)
            if site is None:
                site = build_site(services.settings)
                request.app.state.web = site
    return site


SiteDep = Annotated[Site, Depends(get_site)]
