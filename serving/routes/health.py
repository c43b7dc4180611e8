"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import ServicesDep, require_read

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> Any:
    """Ready when the graph and a recommender per arm are loaded. Redis down or hung is
    "degraded", with the reason: recommendations are still served, feedback is spooled
    locally. A plain ``def``: FastAPI runs it in the threadpool, never on the event loop."""
    redis_ok = False
    breaker = services.breaker
    reason: str | None = None
    if breaker is not None and breaker.is_open:  # never wait on a Redis known to be down
        reason = f"{breaker.reason}; open {breaker.open_for():.0f} s; feedback is spooled"
    elif services.redis is not None:
        client = services.redis.client
        try:
            redis_ok = bool(breaker.call(client.ping) if breaker else client.ping())
        except Exception as exc:  # any failure of the ping means "not reachable now"
            reason = f"redis {type(exc).__name__}"
    arms = {a.name: a.name in services.recommenders for a in services.ab.arms}
    ready = all(arms.values())
    body: dict[str, Any] = {
        "status": ("ready" if redis_ok else "degraded") if ready else "not ready",
        "redis": "ok" if redis_ok else "unreachable",
        **({"reason": reason} if reason else {}),
        "arms": {
            name: services.recommenders[name].policy_version if ok else None
            for name, ok in arms.items()
        },
        "worker": os.getpid(),  # which process answered (serve --workers N: one of N)
    }
    if services.policy_status is not None:  # e.g. "no registered version 'champion'..."
        body["policies"] = services.policy_status()
    warmup = services.precompute.status() if services.precompute is not None else None
    if warmup is not None:  # known users' states computed ahead, once a policy is loaded
        body["precompute"] = warmup  # this worker's own (serve --workers N: one each)
    return JSONResponse(status_code=200 if ready else 503, content=body)


@router.get(
    "/metrics",
    dependencies=[Depends(require_read)],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {"description": "MARQUEE_PROTECT_READS is set: missing or wrong bearer token."},
        403: {"description": "MARQUEE_PROTECT_READS is set but no API token is configured."},
    },
)
def metrics(services: ServicesDep) -> Response:
    return Response(content=services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
