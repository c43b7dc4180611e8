"""The recommendation log: every served slate, kept in Redis for a while (TTL), so feedback that
names it (or matches it by user and movie) can become a transition (s, a, r, s').

Key ``{prefix}:rec:{id}`` is a hash: user, arm, version, slate (JSON list of movie keys), and
float32 bytes for propensities, state and action. ``{prefix}:recs:{user}`` lists the user's
recent ids, newest first.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np
import redis

from serving.ab_live import count_served
from serving.breaker import BreakerOpen, CircuitBreaker
from serving.recommender import RecommendationResult

log = logging.getLogger(__name__)

USER_WINDOW = 50  # recent recommendations per user kept for matching (user, movie) feedback
CLOCK_SKEW_SECONDS = 60.0  # how far a feedback source's clock may run behind the service's


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LoggedRecommendation:
    """One served slate as logged."""

    id: str
    user: str
    arm: str
    policy_version: str
    slate: list[str]
    propensities: np.ndarray
    state: np.ndarray | None
    action: np.ndarray | None
    created: float


def _vec(value: np.ndarray | None) -> bytes:
    return b"" if value is None else np.asarray(value, dtype=np.float32).reshape(-1).tobytes()


def _unvec(raw: bytes | None) -> np.ndarray | None:
    return None if not raw else np.frombuffer(raw, dtype=np.float32).copy()


class RecLog:
    """Writes and reads logged recommendations."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds

    def _key(self, rec_id: str) -> str:
        return f"{self.prefix}:rec:{rec_id}"

    def _user_key(self, user: str) -> str:
        return f"{self.prefix}:recs:{user}"

    def log(self, rec: LoggedRecommendation) -> None:
        """Store ``rec`` (atomically, with its TTL). Raises redis errors when Redis is down."""
        key, ukey = self._key(rec.id), self._user_key(rec.user)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "user": rec.user,
                "arm": rec.arm,
                "version": rec.policy_version,
                "slate": json.dumps(rec.slate),
                "prop": _vec(rec.propensities),
                "state": _vec(rec.state),
                "action": _vec(rec.action),
                "t": repr(rec.created),
            },
        )
        pipe.expire(key, self.ttl)
        count_served(pipe, self.prefix, rec.arm, rec.user)
        pipe.lpush(ukey, rec.id)
        pipe.ltrim(ukey, 0, USER_WINDOW - 1)
        pipe.expire(ukey, self.ttl)
        pipe.execute()

    def get(self, rec_id: str) -> LoggedRecommendation | None:
        """The logged recommendation, or None when unknown or expired."""
        raw: dict[bytes, bytes] = self.client.hgetall(self._key(rec_id))  # type: ignore[assignment]
        if not raw:
            return None
        f = {k.decode(): v for k, v in raw.items()}
        prop = _unvec(f.get("prop"))
        return LoggedRecommendation(
            id=rec_id,
            user=f["user"].decode(),
            arm=f["arm"].decode(),
            policy_version=f["version"].decode(),
            slate=[str(m) for m in json.loads(f["slate"])],
            propensities=prop if prop is not None else np.zeros(0, np.float32),
            state=_unvec(f.get("state")),
            action=_unvec(f.get("action")),
            created=float(f.get("t", b"0")),
        )

    def find(
        self, user: str, movie: str, before: float | None = None
    ) -> LoggedRecommendation | None:
        """The user's most recent logged slate that contains ``movie``, or None. With
        ``before`` (a Unix time: when the feedback happened), only slates served by then, give
        or take ``CLOCK_SKEW_SECONDS``: an event cannot be a reaction to a later slate."""
        ids: list[bytes] = self.client.lrange(self._user_key(user), 0, USER_WINDOW - 1)  # type: ignore[assignment]
        for raw_id in ids:
            rec = self.get(raw_id.decode())
            if rec is None or movie not in rec.slate:
                continue
            if before is not None and rec.created > before + CLOCK_SKEW_SECONDS:
                continue
            return rec
        return None


def make_record(
    user: str,
    arm: str,
    policy_version: str,
    slate: list[str],
    propensities: list[float],
    state: np.ndarray | None,
    action: np.ndarray | None,
) -> LoggedRecommendation:
    """A record with a fresh id and the current time."""
    return LoggedRecommendation(
        id=new_recommendation_id(),
        user=user,
        arm=arm,
        policy_version=policy_version,
        slate=slate,
        propensities=np.asarray(propensities, dtype=np.float32),
        state=state,
        action=action,
        created=time.time(),
    )


def log_served(
    reclog: RecLog | None,
    user: str,
    arm: str,
    result: RecommendationResult,
    breaker: CircuitBreaker | None = None,
) -> tuple[LoggedRecommendation, bool]:
    """Record a slate that is about to be shown (HTTP or Plex): returns the record and whether
    Redis took it. A Redis failure is logged and swallowed: the slate is shown anyway, only
    online learning misses it. With ``breaker`` open, Redis is not even tried."""
    record = make_record(
        user,
        arm,
        result.policy_version,
        [i.movie for i in result.items],
        [i.propensity for i in result.items],
        result.state,
        result.action,
    )
    if reclog is None or not result.items:
        return record, False
    try:
        if breaker is not None:
            breaker.call(lambda: reclog.log(record))
        else:
            reclog.log(record)
    except BreakerOpen:
        return record, False
    except redis.RedisError as exc:
        log.warning("recommendation %s not logged: %s", record.id, type(exc).__name__)
        return record, False
    return record, True
