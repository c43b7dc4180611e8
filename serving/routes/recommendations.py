"""GET /v1/users/{user}/recommendations: a ranked, explained slate from the user's A/B arm."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from features.graph.schema import VertexKind
from serving.deps import ReadServicesDep
from serving.presentation import present
from serving.reclog import LoggedRecommendation, alog_served, log_served
from serving.recommender import RecommendationResult
from serving.schemas.recommendations import Recommendations

log = logging.getLogger(__name__)

router = APIRouter(tags=["recommendations"])


@router.get(
    "/v1/users/{user}/recommendations",
    response_model=Recommendations,
    responses={
        401: {"description": "MARQUEE_PROTECT_READS is set: missing or wrong bearer token."},
        403: {"description": "MARQUEE_PROTECT_READS is set but no API token is configured."},
        429: {
            "description": "Too many reads without the API token from this address "
            "(MARQUEE_ANONYMOUS_READS_PER_MINUTE); see Retry-After."
        },
        503: {"description": "The arm's policy is not loaded, or the service is starting."},
    },
)
async def recommendations(
    user: Annotated[str, Path(min_length=1, max_length=200)],
    services: ReadServicesDep,
    # None rather than default_factory=list: pydantic inspects a default factory's signature
    # on every request (about 3 ms of a recommendation's CPU on this machine).
    genres: Annotated[
        list[str] | None,
        Query(description="Genres for cold start (names or keys; repeat or comma)."),
    ] = None,
    k: Annotated[int | None, Query(ge=1, description="Slate size.")] = None,
) -> Response:
    """The work (ranking, the Redis log, explanations) runs in the threadpool, one hop per
    request; with ``Services.inline`` (the embedded graph, whose reads are memory) the ranking
    and the explanations run on the event loop, one request at a time in arrival order,
    without the threads' contention for the GIL, and the slate log's Redis call is awaited
    there through the asyncio client (serving.redis_async; the threadpool when there is
    none): the embedded Redis acknowledges a write once it is on disk (fsync), and a blocking
    call would stall the worker meanwhile. The body is built as the
    ``Recommendations`` schema and written to JSON there too: returning a Response skips
    FastAPI's second validation and encoding pass over a model built from checked values
    (``response_model`` still documents it in OpenAPI)."""
    # The services and the read checks come as one dependency (serving.deps.read_services),
    # not one each: every dependency FastAPI resolves costs the hot path.
    settings = services.settings
    size = k if k is not None else settings.default_k
    if size > settings.max_k:  # the OpenAPI document gives this maximum (serving.openapi)
        msg = f"k must be at most {settings.max_k}, got {size}"
        error = {"loc": ["query", "k"], "msg": msg, "type": "less_than_equal"}
        raise HTTPException(status_code=422, detail=[error])
    wanted = [g.strip() for raw in genres or () for g in raw.split(",") if g.strip()]
    arm = services.ab.assign(user)
    recommender = services.recommenders.get(arm.name)
    if recommender is None:
        raise HTTPException(status_code=503, detail=f"A/B arm {arm.name!r} has no policy loaded")
    store, presenter = services.store, services.presenter

    def log(result: RecommendationResult) -> tuple[LoggedRecommendation, bool]:
        return log_served(services.reclog, user, arm.name, result, services.breaker)

    def respond(
        result: RecommendationResult, record: LoggedRecommendation, logged: bool
    ) -> Response:
        services.metrics.recommendations.labels(arm=arm.name).inc()
        if presenter is not None:
            items = presenter.present(user, result, record.id, arm)
        else:
            known = store.vertex(VertexKind.USER, user) is not None
            items = present(store, user, result, record.id, arm, known)
        body = Recommendations(
            user=user,
            recommendation_id=record.id,
            policy_version=result.policy_version,
            arm=arm.name,
            cold_start=result.cold_start,
            logged=logged,
            items=items,
        )
        return Response(content=body.model_dump_json(), media_type="application/json")

    if services.inline:  # only the Redis call waits, and others run meanwhile
        result = recommender.recommend(user, size, genres=wanted)
        reclog = services.reclog
        if reclog is not None and reclog.can_await:  # awaited on the loop: no thread hop
            logged = await alog_served(reclog, user, arm.name, result, services.breaker)
        else:
            logged = await run_in_threadpool(log, result)
        return respond(result, *logged)

    def serve() -> Response:
        result = recommender.recommend(user, size, genres=wanted)
        return respond(result, *log(result))

    return await run_in_threadpool(serve)
