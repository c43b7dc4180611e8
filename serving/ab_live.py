"""Live per-arm counters for GET /v1/ab: cheap to read (one pipeline), kept as slates are
served and feedback is stored. An interleaved slate counts as served by both its teams, and
feedback on it counts for the team whose item it names (the credit).

Keys (``{<prefix>:reclog}:ab:...``, in the served-slate log's hash slot because the log's script
counts each slate it stores): hashes ``served``, ``feedback`` (events joined to an arm's slate)
and ``reward`` (their reward sum, features.reward's scale) keyed by arm, and per arm two
HyperLogLogs, ``users:{arm}`` and ``accepted:{arm}`` (slates with positive feedback), whose
counts are within about 1% and whose size stays at 12 KB whatever the traffic. The counters
are a running view since the service first logged; ``marquee ab report`` recomputes exact,
windowed figures from the logs themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import redis

from agent.buffers.hash_tag import RECLOG, tag
from features.reward import feedback_reward
from serving.schemas.feedback import FeedbackEvent

if TYPE_CHECKING:  # the reclog counts its slates here: import it for types only
    from serving.reclog import LoggedRecommendation, RecLog

log = logging.getLogger(__name__)


def _key(prefix: str, name: str) -> str:
    return f"{tag(prefix, RECLOG)}:ab:{name}"


def served_keys(prefix: str, arm: str) -> tuple[str, str]:
    """The keys the reclog's script bumps per served slate: the ``served`` hash and the arm's
    ``users`` HyperLogLog."""
    return _key(prefix, "served"), _key(prefix, f"users:{arm}")


def count_feedback(
    client: redis.Redis, prefix: str, reclog: RecLog, events: Sequence[FeedbackEvent]
) -> None:
    """Count newly stored events against the arm of the slate each joins (events that join no
    logged slate are not counted). A Redis error here is logged, never raised: the events are
    already stored, and the live view is only a view."""
    try:
        pipe = client.pipeline(transaction=False)
        for event in events:
            rec: LoggedRecommendation | None = None
            if event.recommendation_id is not None:
                rec = reclog.get(event.recommendation_id)
            elif event.user is not None and event.movie is not None:
                rec = reclog.find(event.user, event.movie, before=event.timestamp.timestamp())
            if rec is None:
                continue
            reward = feedback_reward(event.type.value, event.rating, event.completion)
            arm = rec.team_of(event.movie)  # interleaved: the team whose item it was
            pipe.hincrby(_key(prefix, "feedback"), arm, 1)
            pipe.hincrbyfloat(_key(prefix, "reward"), arm, reward)
            if reward > 0:
                pipe.pfadd(_key(prefix, f"accepted:{arm}"), rec.id)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("A/B live counters not updated: %s", type(exc).__name__)


@dataclass(frozen=True)
class ArmLive:
    """One arm's running figures. ``acceptance``: slates with positive feedback per served
    slate; ``mean_reward``: feedback reward per served slate."""

    name: str
    policy: str
    share: float
    served_slates: int
    users: int
    feedback_events: int
    accepted_slates: int
    acceptance: float | None
    mean_reward: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def snapshot(
    client: redis.Redis, prefix: str, arms: Sequence[tuple[str, str, float]]
) -> list[ArmLive]:
    """Every arm's counters in one round trip; ``arms`` as (name, policy, share)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(_key(prefix, "served"))
    pipe.hgetall(_key(prefix, "feedback"))
    pipe.hgetall(_key(prefix, "reward"))
    for name, _, _ in arms:  # one key each: redis-py's cluster pipeline blocks ``pfcount()``
        pipe.execute_command("PFCOUNT", _key(prefix, f"users:{name}"))  # (it may span slots)
        pipe.execute_command("PFCOUNT", _key(prefix, f"accepted:{name}"))
    served, feedback, reward, *counts = pipe.execute()

    def get(table: dict[bytes, bytes], name: str) -> float:
        raw = table.get(name.encode())
        return float(raw) if raw is not None else 0.0

    out = []
    for i, (name, policy, share) in enumerate(arms):
        n = int(get(served, name))
        accepted = min(int(counts[2 * i + 1]), n)
        out.append(
            ArmLive(
                name=name,
                policy=policy,
                share=share,
                served_slates=n,
                users=int(counts[2 * i]),
                feedback_events=int(get(feedback, name)),
                accepted_slates=accepted,
                acceptance=accepted / n if n else None,
                mean_reward=get(reward, name) / n if n else None,
            )
        )
    return out
