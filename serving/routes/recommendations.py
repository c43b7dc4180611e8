"""GET /v1/users/{user}/recommendations: a ranked, explained slate from the user's A/B arm."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from features.graph.schema import VertexKind
from features.graph.store import Explanation, GraphStore, UnknownVertexError
from serving.ab import Arm
from serving.deps import (
    ABDep,
    MetricsDep,
    RecLogDep,
    RecommendersDep,
    SettingsDep,
    StoreDep,
    require_read,
)
from serving.reclog import log_served
from serving.recommender import RecommendationResult
from serving.schemas.recommendations import Recommendations, RecommendedMovie

log = logging.getLogger(__name__)

router = APIRouter(tags=["recommendations"], dependencies=[Depends(require_read)])


def _explain_all(store: GraphStore, user: str, movies: list[str]) -> list[Explanation | None]:
    """store.explain for each movie (None where the user or movie is unknown), in one pass
    when the store offers ``explain_many`` (the embedded one does)."""
    many = getattr(store, "explain_many", None)
    if many is not None:
        try:
            return list(many(user, movies))
        except UnknownVertexError:  # unknown user: no graph path to show
            return [None] * len(movies)
    out: list[Explanation | None] = []
    for movie in movies:
        try:
            out.append(store.explain(user, movie))
        except UnknownVertexError:  # unknown user or movie
            out.append(None)
    return out


def present(
    store: GraphStore, user: str, result: RecommendationResult, rec_id: str, arm: Arm, known: bool
) -> list[RecommendedMovie]:
    """Attach title, year, poster and an explanation (a graph path when there is one)."""
    out: list[RecommendedMovie] = []
    paths = (
        _explain_all(store, user, [i.movie for i in result.items])
        if known
        else [None] * len(result.items)
    )
    for rank, (item, path) in enumerate(zip(result.items, paths, strict=True), start=1):
        movie = store.vertex(VertexKind.MOVIE, item.movie) or {}
        year = int(movie.get("year") or 0)  # type: ignore[call-overload]
        text = path.text if path is not None else (item.reason or "Recommended for you.")
        out.append(
            RecommendedMovie(
                rank=rank,
                movie=item.movie,
                title=str(movie.get("title") or item.movie),
                year=year or None,
                poster_url=str(movie.get("poster_url") or "") or None,
                score=item.score,
                propensity=item.propensity,
                explanation=text,
                recommendation_id=rec_id,
                policy_version=result.policy_version,
                arm=arm.name,
            )
        )
    return out


@router.get("/v1/users/{user}/recommendations", response_model=Recommendations)
async def recommendations(
    user: Annotated[str, Path(min_length=1, max_length=200)],
    settings: SettingsDep,
    store: StoreDep,
    ab: ABDep,
    recommenders: RecommendersDep,
    metrics: MetricsDep,
    reclog: RecLogDep,
    k: Annotated[int | None, Query(ge=1, description="Slate size.")] = None,
    genres: Annotated[
        list[str] | None,
        Query(description="Genres for cold start (names or keys; repeat or comma)."),
    ] = None,
) -> Response:
    """The blocking work (ranking, the Redis log, explanations) runs in the threadpool, one hop
    per request. The body is built as the ``Recommendations`` schema and written to JSON there
    too: returning a Response skips FastAPI's second validation and encoding pass over a model
    built from checked values (``response_model`` still documents it in OpenAPI)."""
    size = k if k is not None else settings.default_k
    if size > settings.max_k:
        raise HTTPException(
            status_code=422, detail=f"k must be at most {settings.max_k}, got {size}"
        )
    wanted = [g.strip() for raw in genres or [] for g in raw.split(",") if g.strip()]
    arm = ab.assign(user)
    recommender = recommenders.get(arm.name)
    if recommender is None:
        raise HTTPException(status_code=503, detail=f"A/B arm {arm.name!r} has no policy loaded")

    def serve() -> Response:
        result = recommender.recommend(user, size, genres=wanted)
        record, logged = log_served(reclog, user, arm.name, result)
        known = store.vertex(VertexKind.USER, user) is not None
        metrics.recommendations.labels(arm=arm.name).inc()
        body = Recommendations(
            user=user,
            recommendation_id=record.id,
            policy_version=result.policy_version,
            arm=arm.name,
            cold_start=result.cold_start,
            logged=logged,
            items=present(store, user, result, record.id, arm, known),
        )
        return Response(content=body.model_dump_json(), media_type="application/json")

    return await run_in_threadpool(serve)
