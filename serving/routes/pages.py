"""The web pages: ``/`` (pick a user), ``/users/{user}`` (their cards, with filters),
``/users/{user}/cards`` (card fragments, for replacing a dismissed card), ``/movies/{movie}``
(details, why, more like this) and ``/posters/{movie}`` (an image that always loads).

Slates come from the user's A/B arm and are logged exactly as ``GET /v1/users/{u}/
recommendations`` logs them, so feedback on a card joins its slate.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore
from serving.breaker import CircuitBreaker
from serving.deps import (
    ABDep,
    BreakerDep,
    MetricsDep,
    RecLogDep,
    RecommendersDep,
    SettingsDep,
    StoreDep,
    limit_anonymous_reads,
    require_read,
)
from serving.posters import MovieInfo
from serving.presentation import explanations, present
from serving.reclog import log_served
from serving.web.browse import decade_of
from serving.web.cards import Card, cards, genres_of, graph_path, more_like_this
from serving.web.site import SiteDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["pages"], dependencies=[Depends(require_read)])

UserPath = Annotated[str, Path(min_length=1, max_length=200)]
MoviePath = Annotated[str, Path(min_length=1, max_length=200)]
PAGE_SIZE = 20


def _users(store: GraphStore, limit: int = 200) -> list[str]:
    frame = store.vertex_frame(VertexKind.USER)
    keys = [str(k) for k in frame["key"]] if "key" in frame else []
    return sorted(keys, key=lambda k: (len(k), k))[:limit]


def _genres(store: GraphStore) -> list[str]:
    frame = store.vertex_frame(VertexKind.GENRE)
    return sorted(str(n) for n in frame["name"]) if "name" in frame else []


def _given(**params: object) -> dict[str, object]:
    """The query parameters that have a value."""
    return {k: v for k, v in params.items() if v not in (None, "")}


def _keep(card: Card, genre: str | None, decade: int | None, q: str | None) -> bool:
    if genre and genre not in card.genres:
        return False
    if decade and not (card.year and decade <= card.year < decade + 10):
        return False
    return not (q and q.casefold() not in card.title.casefold())


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, store: StoreDep, site: SiteDep) -> Response:
    users = await run_in_threadpool(_users, store)
    return site.templates.TemplateResponse(request, "index.html", {"users": users})


@router.get("/go", include_in_schema=False)
async def go(user: Annotated[str, Query(min_length=1, max_length=200)]) -> Response:
    """The pick-a-user form's target (works without JavaScript)."""
    return RedirectResponse(f"/users/{quote(user.strip(), safe='')}", status_code=303)


async def _slate(
    user: str,
    size: int,
    store: GraphStore,
    ab: Any,
    recommenders: Any,
    metrics: Any,
    reclog: Any,
    library: set[str],
    watchlist: set[str],
    breaker: CircuitBreaker | None = None,
) -> tuple[list[Card], bool]:
    arm = ab.assign(user)
    recommender = recommenders.get(arm.name)
    if recommender is None:
        raise HTTPException(status_code=503, detail=f"A/B arm {arm.name!r} has no policy loaded")

    def serve() -> tuple[list[Card], bool]:
        result = recommender.recommend(user, size)
        # with the breaker open (Redis hung or down) the page is served without logging
        record, _ = log_served(reclog, user, arm.name, result, breaker)
        known = store.vertex(VertexKind.USER, user) is not None
        metrics.recommendations.labels(arm=arm.name).inc()
        items = present(store, user, result, record.id, arm, known)
        shown = cards(store, user, items, known, library=library, watchlist=watchlist)
        return shown, result.cold_start

    return await run_in_threadpool(serve)


@router.get(
    "/users/{user}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[Depends(limit_anonymous_reads)],  # each logs a slate
)
async def user_page(
    request: Request,
    user: UserPath,
    settings: SettingsDep,
    store: StoreDep,
    ab: ABDep,
    recommenders: RecommendersDep,
    metrics: MetricsDep,
    reclog: RecLogDep,
    breaker: BreakerDep,
    site: SiteDep,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    decade_text: Annotated[str | None, Query(alias="decade", max_length=10)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    decade = decade_of(decade_text)
    filtering = bool(genre or decade or q)
    size = settings.max_k if filtering else PAGE_SIZE
    library = await run_in_threadpool(site.library)
    watchlist = await run_in_threadpool(site.watchlist, user, store)
    slate, cold = await _slate(
        user, size, store, ab, recommenders, metrics, reclog, library, watchlist or set(), breaker
    )
    shown = [c for c in slate if _keep(c, genre, decade, q)][:PAGE_SIZE]
    context = {
        "user": user,
        "cards": shown,
        "cold_start": cold,
        "genres": await run_in_threadpool(_genres, store),
        "decades": list(range(1920, 2030, 10)),
        "filters": {"genre": genre or "", "decade": decade, "q": q or ""},
        "filtering": filtering,
        "browse_href": f"/users/{quote(user, safe='')}/browse"
        + (f"?{urlencode(wanted)}" if (wanted := _given(genre=genre, decade=decade, q=q)) else ""),
        "writes": settings.api_token is not None,
        "radarr": bool(settings.radarr_url and settings.radarr_api_key),
        "plex_watchlist": watchlist is not None,
    }
    return site.templates.TemplateResponse(request, "user.html", context)


@router.get(
    "/users/{user}/cards",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[Depends(limit_anonymous_reads)],  # each logs a slate
)
async def more_cards(
    request: Request,
    user: UserPath,
    settings: SettingsDep,
    store: StoreDep,
    ab: ABDep,
    recommenders: RecommendersDep,
    metrics: MetricsDep,
    reclog: RecLogDep,
    breaker: BreakerDep,
    site: SiteDep,
    exclude: Annotated[str, Query(max_length=20_000)] = "",
    n: Annotated[int, Query(ge=1, le=10)] = 1,
) -> Response:
    """``n`` cards not among ``exclude`` (comma-separated movie keys): what replaces a card."""
    skip = {m for m in exclude.split(",") if m}
    size = min(settings.max_k, len(skip) + n + 5)
    library = await run_in_threadpool(site.library)
    watchlist = await run_in_threadpool(site.watchlist, user, store)
    slate, _ = await _slate(
        user, size, store, ab, recommenders, metrics, reclog, library, watchlist or set(), breaker
    )
    fresh = [c for c in slate if c.movie not in skip][:n]
    context = {
        "user": user,
        "cards": fresh,
        "writes": settings.api_token is not None,
        "radarr": bool(settings.radarr_url and settings.radarr_api_key),
        "plex_watchlist": watchlist is not None,
    }
    return site.templates.TemplateResponse(request, "cards.html", context)


def _people(store: GraphStore, movie: str, edge: EdgeKind, limit: int = 6) -> list[str]:
    names = []
    for n in store.neighbours(VertexKind.MOVIE, movie, edge, "in")[:limit]:
        v = store.vertex(VertexKind.PERSON, n.key) or {}
        names.append(str(v.get("name") or n.key))
    return names


@router.get("/movies/{movie}", response_class=HTMLResponse, include_in_schema=False)
async def movie_page(
    request: Request,
    movie: MoviePath,
    store: StoreDep,
    site: SiteDep,
    user: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    def build() -> dict[str, Any]:
        v = store.vertex(VertexKind.MOVIE, movie)
        if v is None:
            raise HTTPException(status_code=404, detail=f"no movie {movie!r} in the graph")
        why = None
        if user and store.vertex(VertexKind.USER, user) is not None:
            why = explanations(store, user, [movie])[0]
        return {
            "movie": movie,
            "title": str(v.get("title") or movie),
            "year": int(v.get("year") or 0) or None,  # type: ignore[call-overload]
            "genres": genres_of(v),
            "summary": str(v.get("summary") or ""),
            "directors": _people(store, movie, EdgeKind.DIRECTED),
            "cast": _people(store, movie, EdgeKind.ACTED_IN),
            "user": user,
            "why": why.text if why is not None else None,
            "why_path": graph_path(why),
            "similar": more_like_this(store, movie),
        }

    context = await run_in_threadpool(build)
    return site.templates.TemplateResponse(request, "movie.html", context)


@router.get("/posters/{movie}", include_in_schema=False)
async def poster(movie: MoviePath, store: StoreDep, site: SiteDep) -> Response:
    """The movie's poster from the first source that has one, else a generated one."""

    def find() -> Response:
        v = store.vertex(VertexKind.MOVIE, movie)
        if v is None:
            raise HTTPException(status_code=404, detail=f"no movie {movie!r} in the graph")
        info = MovieInfo(
            key=movie,
            title=str(v.get("title") or movie),
            year=int(v.get("year") or 0) or None,  # type: ignore[call-overload]
            tmdb_id=int(v.get("tmdb_id") or 0) or None,  # type: ignore[call-overload]
            poster_url=str(v.get("poster_url") or "") or None,
        )
        got = site.posters.poster(info)
        return Response(
            content=got.data,
            media_type=got.content_type,
            headers={"Cache-Control": "max-age=86400", "X-Poster-Source": got.source},
        )

    return await run_in_threadpool(find)
