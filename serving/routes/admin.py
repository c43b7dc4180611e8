"""GET /admin: what the service runs. Policy versions and aliases from MLflow's registry, the
A/B arms with their shares and what each serves now, live per-arm counts (the figures
``GET /v1/ab`` gives, refreshed in the page from it), and the champion's learning curve."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from serving.ab_live import snapshot
from serving.deps import ABDep, RecLogDep, RecommendersDep, ServicesDep, require_read
from serving.web.admin import AdminRegistryDep
from serving.web.site import SiteDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["pages"], dependencies=[Depends(require_read)])


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
async def admin_page(
    request: Request,
    services: ServicesDep,
    ab: ABDep,
    recommenders: RecommendersDep,
    reclog: RecLogDep,
    registry: AdminRegistryDep,
    site: SiteDep,
) -> Response:
    notes = services.policy_status() if services.policy_status is not None else {}
    arms = [
        {
            "name": arm.name,
            "policy": arm.policy,
            "share": arm.share,
            "serving": recommenders[arm.name].policy_version,
            "note": notes.get(arm.policy, ""),
        }
        for arm in ab.arms
    ]
    live: list[Any] | None = None
    live_error = None
    if reclog is None:
        live_error = "Redis is not available: no live counts."
    else:
        try:
            live = await run_in_threadpool(
                snapshot,
                reclog.client,
                reclog.prefix,
                [(a.name, a.policy, a.share) for a in ab.arms],
            )
        except redis.RedisError as exc:
            log.warning("A/B counters unreadable: %s", type(exc).__name__)
            live_error = "Redis is not answering: no live counts."
    view = await run_in_threadpool(registry.view)
    context = {"arms": arms, "live": live, "live_error": live_error, "registry": view}
    return site.templates.TemplateResponse(request, "admin.html", context)
