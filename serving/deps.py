"""FastAPI dependencies: the app's services and the bearer-token checks.

Everything a route needs comes through here (typing.Annotated aliases), so a test can swap any
piece with ``app.dependency_overrides[get_x] = ...``. Services live on ``app.state`` (built by
serving.app's lifespan), never in module globals.

They are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in its
threadpool, one thread hop each, and the eight a recommendation request resolves cost about 3 ms
per request on a busy two-core machine; these only read attributes, so they run on the loop.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from features.graph.store import GraphStore
from serving.ab import ABRouter
from serving.breaker import CircuitBreaker
from serving.feedback.graph_history import FeedbackHistory
from serving.feedback.sink import FeedbackSink
from serving.metrics import Metrics
from serving.plex.ids import PlexRef, new_movie_key
from serving.precompute import Precompute
from serving.presentation import Presenter
from serving.rate_limit import RateLimiter
from serving.reclog import RecLog
from serving.recommender import Recommender
from serving.redis_conn import RedisHandle
from serving.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the running app holds. ``recommenders`` maps A/B arm name -> recommender."""

    settings: Settings
    store: GraphStore
    ab: ABRouter
    recommenders: dict[str, Recommender]
    sink: FeedbackSink
    metrics: Metrics
    reclog: RecLog | None = None
    redis: RedisHandle | None = None
    closers: list[object] = field(default_factory=list)
    # per registry ref, what it serves and why (None: no registry-backed arms)
    policy_status: Callable[[], dict[str, str]] | None = None
    # Plex items -> graph movie keys (the app's resolves against its store)
    resolve_movie: Callable[[PlexRef], str] = new_movie_key
    # called for each Plex library.new delivery (None: nothing to do)
    on_library_new: Callable[[PlexRef], None] | None = None
    # open after a Redis timeout: nothing waits on Redis until the background probe succeeds
    breaker: CircuitBreaker | None = None
    # reads without the API token, per client address (None: not limited)
    rate_limiter: RateLimiter | None = None
    # known users' states computed ahead of requests (None: off, or no policy pool)
    precompute: Precompute | None = None
    # writes stored feedback's history changes into the graph (None: feedback stays in Redis)
    history: FeedbackHistory | None = None
    # slates' cards and explanations, kept per graph revision (None: read the store each time)
    presenter: Presenter | None = None
    # a recommendation runs on the event loop, not the threadpool (Settings.inline_requests)
    inline: bool = False


async def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise HTTPException(status_code=503, detail="service is starting or stopped")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_store(services: ServicesDep) -> GraphStore:
    return services.store


async def get_ab(services: ServicesDep) -> ABRouter:
    return services.ab


async def get_recommenders(services: ServicesDep) -> dict[str, Recommender]:
    return services.recommenders


async def get_sink(services: ServicesDep) -> FeedbackSink:
    return services.sink


async def get_metrics(services: ServicesDep) -> Metrics:
    return services.metrics


async def get_reclog(services: ServicesDep) -> RecLog | None:
    return services.reclog


async def get_webhook_secret(settings: SettingsDep) -> str | None:
    secret = settings.plex_webhook_secret
    return secret.get_secret_value() if secret is not None else None


async def get_api_token(settings: SettingsDep) -> str | None:
    token = settings.api_token
    return token.get_secret_value() if token is not None else None


async def get_breaker(services: ServicesDep) -> CircuitBreaker | None:
    return services.breaker


async def get_movie_resolver(services: ServicesDep) -> Callable[[PlexRef], str]:
    return services.resolve_movie


async def get_library_new(services: ServicesDep) -> Callable[[PlexRef], None] | None:
    return services.on_library_new


async def get_history(services: ServicesDep) -> FeedbackHistory | None:
    return services.history


async def get_precompute(services: ServicesDep) -> Precompute | None:
    return services.precompute


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[GraphStore, Depends(get_store)]
ABDep = Annotated[ABRouter, Depends(get_ab)]
RecommendersDep = Annotated[dict[str, Recommender], Depends(get_recommenders)]
SinkDep = Annotated[FeedbackSink, Depends(get_sink)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RecLogDep = Annotated["RecLog | None", Depends(get_reclog)]
WebhookSecretDep = Annotated["str | None", Depends(get_webhook_secret)]
BreakerDep = Annotated["CircuitBreaker | None", Depends(get_breaker)]
ApiTokenDep = Annotated["str | None", Depends(get_api_token)]
MovieResolverDep = Annotated[Callable[[PlexRef], str], Depends(get_movie_resolver)]
LibraryNewDep = Annotated["Callable[[PlexRef], None] | None", Depends(get_library_new)]
PrecomputeDep = Annotated["Precompute | None", Depends(get_precompute)]
HistoryDep = Annotated["FeedbackHistory | None", Depends(get_history)]


def bearer_matches(request: Request, expected: str) -> bool:
    """Does the request carry ``Authorization: Bearer <expected>``? Constant-time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _check_token(request: Request, settings: Settings) -> None:
    """Constant-time comparison of the bearer token; never echoes or logs what was sent."""
    if settings.api_token is None:
        raise HTTPException(
            status_code=403,
            detail="this endpoint needs an API token and none is configured (MARQUEE_API_TOKEN)",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(
            status_code=401,
            detail="missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.api_token.get_secret_value().encode()
    if not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            status_code=401, detail="invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def require_write(request: Request, settings: SettingsDep) -> None:
    """Write endpoints always need the token."""
    _check_token(request, settings)


async def require_read(request: Request, settings: SettingsDep) -> None:
    """Read endpoints need it only with MARQUEE_PROTECT_READS=true."""
    if settings.protect_reads:
        _check_token(request, settings)


async def read_services(request: Request) -> Services:
    """``get_services``, ``require_read`` and ``limit_anonymous_reads`` as one dependency, for
    the recommendations route: FastAPI's resolution of each dependency costs every request
    (seven of them were a tenth of a recommendation's CPU). A test swaps what it returns with
    ``app.dependency_overrides[read_services]``."""
    services = await get_services(request)
    await require_read(request, services.settings)
    await limit_anonymous_reads(request, services)
    return services


ReadServicesDep = Annotated[Services, Depends(read_services)]


async def limit_anonymous_reads(request: Request, services: ServicesDep) -> None:
    """With MARQUEE_ANONYMOUS_READS_PER_MINUTE set, a read without the API token over its
    client address's budget is a 429 with Retry-After (serving.rate_limit)."""
    limiter = services.rate_limiter
    if limiter is None:
        return
    token = services.settings.api_token
    if token is not None and bearer_matches(request, token.get_secret_value()):
        return
    wait = limiter.take(request.client.host if request.client is not None else "unknown")
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status_code=429,
            detail=f"too many requests without the API token; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
