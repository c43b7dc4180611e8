"""POST /v1/feedback: one FeedbackEvent or a list of them; all valid or none stored.

Errors come back as 422 with FastAPI's shape, ``{"detail": [{"loc", "msg", "type"}]}``, where
``loc`` is ["body", <index when a list>, <field>]. Movies must exist in the graph. The new
events' history changes are then written into the graph (serving.feedback.graph_history), so
the user's next slate is ranked from a history that includes them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

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
from serving.feedback.graph_history import submit_with_flags
from serving.request_limits import BodyTooDeep, loads_bounded
from serving.schemas.feedback import FeedbackEvent
from serving.schemas.recommendations import FeedbackAccepted

log = logging.getLogger(__name__)

router = APIRouter(tags=["feedback"])


def _error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def validate_events(
    body: Any, store: GraphStore, max_batch: int
) -> tuple[list[FeedbackEvent], list[dict[str, Any]]]:
    """Parse the body into events; the errors list is empty when all are valid."""
    locs: list[list[Any]]
    if isinstance(body, dict):
        raws, locs = [body], [["body"]]
    elif isinstance(body, list):
        raws, locs = body, [["body", i] for i in range(len(body))]
        if not raws:
            return [], [_error(["body"], "the list of events is empty", "empty")]
        if len(raws) > max_batch:
            msg = f"at most {max_batch} events per request, got {len(raws)}"
            return [], [_error(["body"], msg, "too_many")]
    else:
        msg = "body must be a feedback event (a JSON object) or a list of them"
        return [], [_error(["body"], msg, "wrong_body")]
    events: list[FeedbackEvent] = []
    errors: list[dict[str, Any]] = []
    known: dict[str, bool] = {}
    for raw, loc in zip(raws, locs, strict=True):
        try:
            event = FeedbackEvent.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                errors.append(_error([*loc, *err["loc"]], err["msg"], err["type"]))
            continue
        if event.movie is not None:
            if event.movie not in known:
                known[event.movie] = store.vertex(VertexKind.MOVIE, event.movie) is not None
            if not known[event.movie]:
                msg = f"unknown movie {event.movie!r}: no such movie in the graph"
                errors.append(_error([*loc, "movie"], msg, "unknown_movie"))
                continue
        events.append(event)
    return events, errors


@router.post(
    "/v1/feedback",
    response_model=FeedbackAccepted,
    dependencies=[Depends(require_write)],
    responses={
        400: {"description": "JSON nested too deep; nothing was stored."},
        401: {"description": "Missing or wrong bearer token."},
        403: {"description": "No API token configured: writes are refused."},
        202: {
            "description": "Redis is down: the events are in the local fsynced spool and "
            "will be stored when it is back (`new` counts them all).",
            "model": FeedbackAccepted,
        },
        413: {"description": "Body too large."},
        422: {"description": "Invalid events; nothing was stored."},
        503: {"description": "Feedback store unavailable; retry."},
    },
)
async def post_feedback(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    sink: SinkDep,
    metrics: MetricsDep,
    history: HistoryDep,
) -> Any:
    raw = await request.body()
    try:
        body = loads_bounded(raw, settings.max_json_depth)
    except BodyTooDeep as exc:
        return JSONResponse(
            status_code=400, content={"detail": [_error(["body"], str(exc), "json_too_deep")]}
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return JSONResponse(
            status_code=422,
            content={
                "detail": [_error(["body"], f"body is not valid JSON: {exc}", "json_invalid")]
            },
        )
    events, errors = await run_in_threadpool(
        validate_events, body, store, settings.max_feedback_batch
    )
    if errors:
        return JSONResponse(status_code=422, content={"detail": errors})
    try:
        flags, spooled = await run_in_threadpool(submit_with_flags, sink, events)
    except redis.RedisError as exc:
        log.error("feedback store failed: %s", type(exc).__name__)
        raise HTTPException(status_code=503, detail="feedback store unavailable; retry") from None
    for event in events:
        metrics.feedback.labels(type=event.type.value).inc()
    if history is not None:  # the new events join the users' histories in the graph
        await run_in_threadpool(history.apply_new, events, flags)
    accepted = FeedbackAccepted(received=len(events), new=sum(flags), spooled=spooled)
    if spooled:  # on disk (fsynced), not yet in Redis: accepted, stored later
        return JSONResponse(status_code=202, content=accepted.model_dump())
    return accepted
