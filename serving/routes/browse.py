"""GET /users/{user}/browse: the whole catalogue as cards, for finding a movie the
recommendations do not show. Filters by genre, decade and title; "hide what I've seen" (on by
default) leaves out what the user rated or watched, and when off those cards say so. Movies the
user said "not interested" to are never shown. Nothing here is logged as a recommendation."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from features.graph.schema import VertexKind
from serving.deps import SettingsDep, StoreDep, require_read
from serving.web.browse import decade_of, select, user_seen
from serving.web.cards import browse_cards
from serving.web.site import SiteDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["pages"], dependencies=[Depends(require_read)])

PAGE_SIZE = 20
DECADES = list(range(1920, 2030, 10))


def hides_seen(seen: list[str] | None) -> bool:
    """The form sends seen=show (a hidden field) then seen=hide when the box is ticked; a plain
    link sends nothing. Hidden unless the last value is "show"."""
    return not seen or seen[-1] != "show"


@router.get("/users/{user}/browse", response_class=HTMLResponse, include_in_schema=False)
async def browse_page(
    request: Request,
    user: Annotated[str, Path(min_length=1, max_length=200)],
    settings: SettingsDep,
    store: StoreDep,
    site: SiteDep,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    decade_text: Annotated[str | None, Query(alias="decade", max_length=10)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    seen: Annotated[list[str] | None, Query(max_length=2)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    decade = decade_of(decade_text)
    hide = hides_seen(seen)
    watchlist = await run_in_threadpool(site.watchlist, user, store)

    def build() -> dict[str, Any]:
        catalogue = site.catalogue.get(store)
        did = user_seen(store, user)
        exclude = did.dismissed | (did.seen if hide else set())
        rows = select(catalogue, genre=genre, decade=decade, q=q, exclude=exclude)
        total = len(rows)
        start = (page - 1) * PAGE_SIZE
        chunk = rows.iloc[start : start + PAGE_SIZE]
        items = list(
            zip(
                chunk["key"],
                chunk["title"],
                chunk["year"].astype(int),
                chunk["genres"],
                chunk["liked"].astype(int),
                strict=True,
            )
        )
        genres = store.vertex_frame(VertexKind.GENRE)
        return {
            "cards": browse_cards(
                store,
                user,
                items,
                did.ratings,
                did.watched,
                library=site.library(),
                watchlist=watchlist or set(),
            ),
            "total": total,
            "first": start + 1,
            "last": start + len(items),
            "genres": sorted(str(n) for n in genres["name"]) if "name" in genres else [],
        }

    found = await run_in_threadpool(build)
    params = {"genre": genre or "", "decade": decade or "", "q": q or ""}
    context = {
        **found,
        "user": user,
        "page": page,
        "more": found["last"] < found["total"],
        "params": {k: v for k, v in params.items() if v} | {"seen": "hide" if hide else "show"},
        "decades": DECADES,
        "filters": {"genre": genre or "", "decade": decade, "q": q or "", "hide_seen": hide},
        "writes": settings.api_token is not None,
        "radarr": bool(settings.radarr_url and settings.radarr_api_key),
        "plex_watchlist": watchlist is not None,
    }
    return site.templates.TemplateResponse(request, "browse.html", context)
