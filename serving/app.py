"""The FastAPI app factory. Nothing is built at import time: ``create_app`` returns an app whose
lifespan opens the graph store, Redis, the recommenders and the feedback sink, and closes them.

The default recommender factory is serving.policy_source.PolicyPool (registry refs per A/B arm,
swapped live by its watcher thread). Tests can pass a store, a Redis client or a recommender
factory, or override any dependency in serving.deps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import redis
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.graph.store import GraphStore
from serving import allocator, heap, wiring
from serving.ab import ABRouter, Arm
from serving.breaker import CircuitBreaker
from serving.deps import Services
from serving.feedback.graph_history import FeedbackHistory, reclog_users
from serving.feedback.graph_writer import BackgroundHistory
from serving.feedback.spool import REDIS_DOWN, SpoolingFeedbackSink
from serving.metrics import Metrics, method_label
from serving.openapi import build_document
from serving.plex.ids import MovieIndex, PlexRef
from serving.policy_source import PolicyPool
from serving.popularity import PopularityRecommender
from serving.precompute import Precompute, precompute_loop, saved_states_file
from serving.presentation import Presenter
from serving.rate_limit import RateLimiter
from serving.recommender import Recommender
from serving.redis_async import AsyncClient, async_twin, open_connections
from serving.request_limits import BodyLimitMiddleware
from serving.routes import (
    ab,
    actions,
    admin,
    browse,
    feedback,
    health,
    pages,
    plex_webhook,
    recommendations,
)
from serving.settings import Settings
from serving.web.site import WEB_DIR
from serving.wiring import RecommenderFactory

log = logging.getLogger(__name__)


def popularity_factory() -> RecommenderFactory:
    """The built-in factory: "popularity" arms share one PopularityRecommender."""
    shared: dict[int, PopularityRecommender] = {}

    def make(arm: Arm, store: GraphStore) -> Recommender:
        if arm.policy != "popularity":
            raise ValueError(
                f"A/B arm {arm.name!r} names policy {arm.policy!r}, but only 'popularity' is "
                "built in; pass a recommender_factory that loads it"
            )
        if id(store) not in shared:
            shared[id(store)] = PopularityRecommender(store)
        return shared[id(store)]

    return make


class LatencyMiddleware:
    """Times each HTTP request into the latency histogram, labelled by route template (or
    "unmatched") and method (a known one or "other"): closed sets, so no client can grow the
    number of series."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            m = self.metrics()
            if m is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                m.latency.labels(template, method_label(scope["method"]), str(status)).observe(
                    time.perf_counter() - start
                )


def _build(
    settings: Settings,
    store: GraphStore | None,
    redis_client: redis.Redis | None,
    factory: RecommenderFactory,
) -> Services:
    """Open what the app holds (serving.wiring builds the parts, as for the Plex jobs)."""
    opened: list[object] = []
    if store is None:
        from features.graph.factory import open_store

        store = open_store(
            settings.home_dir().ensure(), follow_seconds=settings.graph_follow_seconds
        )
        opened.append(store)
    handle = wiring.open_redis(settings, redis_client)
    if redis_client is None:
        opened.append(handle)
    started = time.perf_counter()
    store.warm_reads()  # what the first requests would otherwise build in front of them
    log.info("graph reads warmed in %.2f s", time.perf_counter() - started)
    recommenders = wiring.ServiceRecommenders(settings, store, factory)
    ab, by_arm = recommenders.ab, recommenders.by_arm
    metrics = Metrics()
    status: Callable[[], dict[str, str]] | None = None
    pool = recommenders.pool
    if pool is not None:
        status = pool.status
        pool.listeners[:] = [_policy_gauge(metrics, ab, by_arm)]
        pool.start()
        opened.append(pool)
    reclog = wiring.reclog(handle.client, settings)
    feedback_store = wiring.feedback_store(handle.client, settings, recommenders, reclog)
    breaker = CircuitBreaker()
    sink = SpoolingFeedbackSink(feedback_store, settings.spool_file(), breaker)
    metrics.watch(metrics.buffer_size, lambda: breaker.call(feedback_store.buffer_size))
    metrics.watch(metrics.spooled, sink.pending)
    for arm in ab.arms:
        metrics.policy.labels(arm.name, arm.policy, by_arm[arm.name].policy_version).set(1)
    precompute = None
    if pool is not None and settings.precompute:
        precompute = Precompute(
            store,
            lambda: pool.loaded_ranker,
            limit=settings.state_cache_size,
            saved=saved_states_file(settings) if settings.precompute_save else None,
            actor_source=pool.loaded_actors,
        )
    on_changed = precompute.changed if precompute is not None else None
    history: FeedbackHistory
    if settings.feedback_graph_delay_seconds is None:
        history = FeedbackHistory(store, on_changed, reclog_users(reclog, breaker))
    else:
        history = BackgroundHistory(
            store,
            on_changed,
            reclog_users(reclog, breaker),
            delay=settings.feedback_graph_delay_seconds,
        )
        opened.append(history)  # closed (its queue written) before the store
    return Services(
        precompute=precompute,
        history=history,
        presenter=Presenter(store, users=settings.state_cache_size),
        inline=_inline(settings, store),
        settings=settings,
        store=store,
        ab=ab,
        recommenders=by_arm,
        sink=sink,
        metrics=metrics,
        reclog=reclog,
        redis=handle,
        closers=opened,
        policy_status=status,
        resolve_movie=_movie_resolver(store),
        breaker=breaker,
        rate_limiter=(
            RateLimiter(settings.anonymous_reads_per_minute)
            if settings.anonymous_reads_per_minute is not None
            else None
        ),
    )


# The slate log's connections opened at a worker's start: as many as the requests it may have
# waiting on Redis at once under load (about its share of 32 clients); more open on demand.
LOG_CONNECTIONS = 16


async def _async_log(services: Services) -> AsyncClient | None:
    """With recommendations on the event loop, the slate log's asyncio client (made on this
    loop, serving.redis_async), handed to the log with its script loaded; None where there is
    none."""
    if not services.inline or services.reclog is None or services.redis is None:
        return None
    twin = async_twin(services.redis.client)
    services.reclog.use_async(twin)
    try:
        await services.reclog.load_async()
        if twin is not None:
            await open_connections(twin, LOG_CONNECTIONS)
    except REDIS_DOWN as exc:  # the first slates load it; the service starts anyway
        log.warning("redis: the slate log's script not loaded at start: %s", type(exc).__name__)
    return twin


def _inline(settings: Settings, store: GraphStore) -> bool:
    """Whether recommendations run on the event loop (Settings.inline_requests): by default
    only over the embedded graph, whose reads are memory, never a network round trip."""
    if settings.inline_requests is not None:
        return settings.inline_requests
    from features.graph.local import LocalGraphStore

    return isinstance(store, LocalGraphStore)


def _policy_gauge(
    metrics: Metrics, ab: ABRouter, recommenders: dict[str, Recommender]
) -> Callable[[str, str], None]:
    """A PolicyPool listener that relabels marquee_policy_loaded after a swap."""

    def update(ref: str, version: str) -> None:
        metrics.policy.clear()
        for arm in ab.arms:
            metrics.policy.labels(arm.name, arm.policy, recommenders[arm.name].policy_version).set(
                1
            )

    return update


async def _replay_loop(sink: SpoolingFeedbackSink, every: float) -> None:
    """In the background, never in front of a request: while the breaker is open, try Redis
    (one PING); once it answers, move spooled feedback into it."""
    while True:
        await asyncio.sleep(every)
        if not sink.breaker.is_open and not sink.has_pending():
            continue
        try:
            await run_in_threadpool(sink.replay)
        except REDIS_DOWN:
            log.debug("redis still unavailable; spool kept")
        except Exception:
            log.exception("spool replay failed; will retry")


def create_app(
    settings: Settings | None = None,
    *,
    store: GraphStore | None = None,
    redis_client: redis.Redis | None = None,
    recommender_factory: RecommenderFactory | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The Marquee API. ``settings`` default to the MARQUEE_* environment. ``freeze_heap``:
    the app is its process's only one (``marquee serve``, a worker), so what its start and
    first warm-up build is frozen out of the garbage collector's walks (serving.heap); not for
    an app among others in one process (tests), whose freezes would keep every other's
    leftovers."""
    cfg = settings if settings is not None else Settings()
    factory = recommender_factory or PolicyPool(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(_build, cfg, store, redis_client, factory)
        await run_in_threadpool(allocator.release)  # what the load's temporaries left resident
        await run_in_threadpool(allocator.drop_mapped, cfg.home_dir().root)  # and its file scans
        if freeze_heap:  # what the load built lives as long as the worker: out of the gc's walks
            await run_in_threadpool(heap.freeze, collect=True)
        twin = await _async_log(services)
        app.state.services = services
        tasks = []
        if isinstance(services.sink, SpoolingFeedbackSink):
            tasks.append(asyncio.create_task(_replay_loop(services.sink, cfg.spool_replay_seconds)))
        if services.precompute is not None:
            loop = precompute_loop(
                services.precompute,
                cfg.precompute_poll_seconds,
                budget=0.05,
                freeze_warm_up=freeze_heap,
            )
            tasks.append(asyncio.create_task(loop))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.state.services = None
            if twin is not None and services.reclog is not None:
                services.reclog.use_async(None)
                await twin.aclose()
            for thing in reversed(services.closers):
                close = getattr(thing, "close", None)
                if close is not None:
                    await run_in_threadpool(close)

    app = FastAPI(
        title="Marquee",
        summary="Movie recommendations that learn from what people watch.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = None
    app.openapi = lambda: build_document(app, cfg)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.add_middleware(
        LatencyMiddleware, metrics=lambda: getattr(app.state.services, "metrics", None)
    )
    app.include_router(health.router)
    app.include_router(recommendations.router)
    app.include_router(feedback.router)
    app.include_router(pages.router)
    app.include_router(browse.router)
    app.include_router(admin.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    app.include_router(ab.router)
    app.include_router(plex_webhook.router)
    return app


def _movie_resolver(store: GraphStore) -> Callable[[PlexRef], str]:
    """Plex items -> existing graph movie keys (IMDb, TMDB, title+year), else a new key.
    The index is built from the store on the first webhook, then kept."""
    index: list[MovieIndex] = []

    def resolve(ref: PlexRef) -> str:
        if not index:
            index.append(MovieIndex.from_store(store))
        return index[0].resolve(ref)

    return resolve
