"""GET /v1/ab: the arms, their shares or mode, and each arm's served slates, users, feedback,
acceptance and mean reward so far, from Redis counters (serving.ab_live): one round trip.
In interleave mode every slate counts for both arms and feedback for the team credited."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serving.ab_live import snapshot
from serving.deps import ABDep, RecLogDep, require_read

router = APIRouter(tags=["ab"], dependencies=[Depends(require_read)])


class ArmView(BaseModel):
    name: str
    policy: str
    share: float
    served_slates: int
    users: int
    feedback_events: int
    accepted_slates: int
    acceptance: float | None
    mean_reward: float | None


class ABView(BaseModel):
    mode: str
    arms: list[ArmView]


@router.get("/v1/ab", response_model=ABView)
async def ab_view(ab: ABDep, reclog: RecLogDep) -> ABView:
    if reclog is None:
        raise HTTPException(status_code=503, detail="Redis is not available: no A/B counters")
    arms = [(a.name, a.policy, a.share) for a in ab.arms]
    try:
        live = await run_in_threadpool(snapshot, reclog.client, reclog.prefix, arms)
    except redis.RedisError as exc:
        raise HTTPException(status_code=503, detail="Redis is not available") from exc
    return ABView(
        mode=ab.config.mode,
        arms=[ArmView(**a.as_dict()) for a in live],  # type: ignore[arg-type]
    )
