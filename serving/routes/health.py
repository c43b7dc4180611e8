"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

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
    """Ready when the graph and a recommender per arm are loaded. Redis down is "degraded":
    recommendations are still served, feedback is spooled locally."""
    redis_ok = False
    if services.redis is not None:
        try:
            redis_ok = bool(services.redis.client.ping())
        except Exception:  # any failure of the ping means "not reachable now"
            redis_ok = False
    arms = {a.name: a.name in services.recommenders for a in services.ab.arms}
    ready = all(arms.values())
    body: dict[str, Any] = {
        "status": ("ready" if redis_ok else "degraded") if ready else "not ready",
        "redis": "ok" if redis_ok else "unreachable",
        "arms": {
            name: services.recommenders[name].policy_version if ok else None
            for name, ok in arms.items()
        },
    }
    if services.policy_status is not None:  # e.g. "no registered version 'champion'..."
        body["policies"] = services.policy_status()
    return JSONResponse(status_code=200 if ready else 503, content=body)


@router.get("/metrics", dependencies=[Depends(require_read)])
def metrics(services: ServicesDep) -> Response:
    return Response(content=services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
