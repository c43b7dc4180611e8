"""POST /users/{user}/movies/{movie}/actions: a card's buttons, sent as feedback.

Each action becomes a FeedbackEvent checked by ``validate_events`` and stored by the feedback
sink, the path ``POST /v1/feedback`` takes (so the replay buffer learns from it). Then the graph
gets the edge the action means, written as every feedback's is (serving.feedback.graph_history):
``not_interested`` (never shown again: candidates leave out seen movies) or ``rated``.
``download`` adds the movie to Radarr first (when configured) and is then stored as a
``click`` from source ``web-download``; a Radarr failure stores nothing.
``watchlist`` puts the movie on the user's plex.tv watchlist first (serving.plex.watchlist) and
is then stored as a ``click`` from source ``web-watchlist``; a plex.tv failure stores nothing.
The two clicks write no edge: the card stays, with its badge. It needs the API token, like
every write. Nothing is written to the graph when the feedback was refused or could not be
stored. A graph edge changes the user's state, so the user is reported to the precomputer
(serving.precompute), which recomputes it in the background.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from features.graph.schema import VertexKind
from features.graph.store import GraphStore
from serving.deps import (
    HistoryDep,
    MetricsDep,
    SettingsDep,
    SinkDep,
    StoreDep,
    require_write,
)
from serving.plex.client import PlexError
from serving.radarr.client import RadarrClient, RadarrError, RadarrSettings
from serving.routes.feedback import validate_events
from serving.web.site import SiteDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["pages"], dependencies=[Depends(require_write)])


class CardAction(BaseModel):
    """What a card's button asks for."""

    action: Literal["not_interested", "rate", "download", "watchlist"]
    rating: int | None = Field(default=None, ge=1, le=5)
    recommendation_id: str | None = Field(default=None, max_length=200)


async def get_radarr(settings: SettingsDep) -> RadarrSettings | None:
    """Radarr's address and key when configured (RADARR_URL, RADARR_API_KEY), else None."""
    if not settings.radarr_url or settings.radarr_api_key is None:
        return None
    return RadarrSettings(
        settings.radarr_url.rstrip("/"), settings.radarr_api_key.get_secret_value()
    )


RadarrDep = Annotated["RadarrSettings | None", Depends(get_radarr)]


def _download(radarr: RadarrSettings, store: GraphStore, movie: str) -> str:
    """Add the movie to Radarr by its TMDB id and start the search; the message to show."""
    tmdb_id = int((store.vertex(VertexKind.MOVIE, movie) or {}).get("tmdb_id") or 0)  # type: ignore[call-overload]
    if tmdb_id <= 0:
        raise RadarrError("this movie has no TMDB id, which Radarr needs")
    with RadarrClient(radarr) as client:
        result = client.add(tmdb_id)
    return "Radarr is searching for it." if result.added else "Radarr already has it."


class ActionDone(BaseModel):
    action: str
    movie: str
    new: int
    message: str


@router.post(
    "/users/{user}/movies/{movie}/actions",
    response_model=ActionDone,
    responses={
        401: {"description": "Missing or wrong bearer token."},
        403: {"description": "No API token configured: writes are refused."},
        404: {"description": "download / watchlist: no such movie in the graph."},
        409: {"description": "download / watchlist: Radarr / Plex is not configured."},
        502: {"description": "Radarr or plex.tv refused or failed; nothing was stored."},
    },
)
async def card_action(
    user: Annotated[str, Path(min_length=1, max_length=200)],
    movie: Annotated[str, Path(min_length=1, max_length=200)],
    body: CardAction,
    settings: SettingsDep,
    store: StoreDep,
    sink: SinkDep,
    metrics: MetricsDep,
    radarr: RadarrDep,
    site: SiteDep,
    history: HistoryDep,
) -> ActionDone:
    if body.action == "rate" and body.rating is None:
        msg = "a rating from 1 to 5 is needed"
        error = {"loc": ["body", "rating"], "msg": msg, "type": "missing"}
        raise HTTPException(status_code=422, detail=[error])
    note = ""
    if body.action == "download":
        if radarr is None:
            raise HTTPException(status_code=409, detail="Radarr is not configured")
        if store.vertex(VertexKind.MOVIE, movie) is None:
            raise HTTPException(status_code=404, detail=f"no movie {movie!r} in the graph")
        try:
            note = await run_in_threadpool(_download, radarr, store, movie)
        except RadarrError as exc:
            raise HTTPException(status_code=502, detail=str(exc)) from None
    if body.action == "watchlist":
        if site.watchlists is None:
            raise HTTPException(status_code=409, detail="Plex is not configured")
        if store.vertex(VertexKind.MOVIE, movie) is None:
            raise HTTPException(status_code=404, detail=f"no movie {movie!r} in the graph")
        try:
            added = await run_in_threadpool(site.add_to_watchlist, user, store, movie)
        except PlexError as exc:
            log.warning("watchlist add failed: %s", exc)
            raise HTTPException(status_code=502, detail=str(exc)) from None
        note = "Added to your Plex watchlist." if added else "Already on your Plex watchlist."
    sources = {"download": "web-download", "watchlist": "web-watchlist"}
    raw: dict[str, object] = {
        "event_id": f"web-{uuid.uuid4().hex}",
        "type": {"rate": "rated", "download": "click", "watchlist": "click"}.get(
            body.action, body.action
        ),
        "user": user,
        "movie": movie,
        "source": sources.get(body.action, "web"),
    }
    if body.recommendation_id:
        raw["recommendation_id"] = body.recommendation_id
    if body.action == "rate":
        raw["rating"] = float(body.rating or 0)
    events, errors = await run_in_threadpool(
        validate_events, raw, store, settings.max_feedback_batch
    )
    if errors:
        raise HTTPException(status_code=422, detail=errors)
    try:
        new = await run_in_threadpool(sink.submit, events)
    except redis.RedisError as exc:
        log.error("feedback store failed: %s", type(exc).__name__)
        raise HTTPException(status_code=503, detail="feedback store unavailable; retry") from None
    metrics.feedback.labels(type=events[0].type.value).inc()
    if body.action in ("not_interested", "rate") and history is not None:
        # the edge joins the user's history; their state is recomputed before they ask
        await run_in_threadpool(history.apply, events)
    message = {
        "not_interested": "Hidden: you will not see it again.",
        "rate": f"Rated {body.rating} of 5 stars.",
    }.get(body.action, note)
    return ActionDone(action=body.action, movie=movie, new=new, message=message)
