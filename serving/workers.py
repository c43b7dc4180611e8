"""``marquee serve --workers N``: several uvicorn worker processes behind one port.

Each worker is a fresh interpreter (serving.supervisor spawns them) that imports
``create_worker_app`` (a factory: nothing is built at import) and builds its own app from the
environment, which the parent sets up first (``worker_environment``). What the workers share
and what they do not:

- shared: the port (each worker listens on its own socket bound to it, and the kernel spreads
  new connections over them: serving.supervisor); Redis (the one at MARQUEE_REDIS_URL, or the
  embedded server the parent starts once and hands to every worker as a unix-socket URL), so
  the slate log, the feedback store, the replay ring, the A/B counters and dedup are one; the
  feedback spool file (appends and replays take an flock); the MLflow registry and, with
  ArangoDB, the graph server.
- mapped once: the embedded graph's saved arrays (features.graph.local_files memory-maps
  them read-only, so the workers share the page cache's one copy; what a worker derives from
  them, such as decoded keys or a k-hop operator, is its own) and the ranking bundle's
  (catalogue, embeddings, retriever, the state builder's pool tables: features.bundle);
- per worker: what is derived from those (the popularity fallback's arrays, the per-user and
  per-day caches; serving.allocator keeps freed memory from staying resident), the policy
  pool and its registry watcher (each swaps a promoted version
  within MARQUEE_REGISTRY_POLL_SECONDS of it, not at the same instant), the circuit breaker, the
  anonymous-read rate limiter's buckets and the Prometheus counters (/metrics shows the worker
  that answered). A/B assignment is a hash of the user and the salt, so every worker puts a user
  in the same arm.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

log = logging.getLogger(__name__)

FACTORY = f"{__name__}:create_worker_app"
# How long uvicorn's supervisor waits for a worker to answer its ping before it kills and
# respawns it (uvicorn's default: 5 s). A worker building a 500K-movie bundle on two busy cores
# missed 5 s pings and was killed over and over, so the service never came up.
HEALTHCHECK_SECONDS = 120


def create_worker_app() -> FastAPI:
    """One worker's app, from the environment the parent prepared."""
    from serving import allocator
    from serving.app import create_app
    from serving.log_redaction import RedactSecretFilter
    from serving.settings import Settings

    allocator.tune()  # before any request thread allocates (serving.allocator)
    logging.getLogger().addFilter(RedactSecretFilter())
    return create_app(Settings(), freeze_heap=True)


@contextmanager
def worker_environment(home: Path) -> Iterator[str]:
    """Point the workers at ``home`` and at one Redis; yields what they will use (safe to log).

    Without MARQUEE_REDIS_URL the embedded Redis is started here, once, and shut down (saving
    its data) when the workers are gone; each worker would otherwise race to start or join its
    own, and a restarted worker that had started it would take it away from the others."""
    from serving.redis_conn import connect
    from serving.settings import Settings

    settings = Settings(home=home)
    saved = {k: os.environ.get(k) for k in ("MARQUEE_HOME", "MARQUEE_REDIS_URL")}
    os.environ["MARQUEE_HOME"] = str(home)
    handle = None
    try:
        if settings.redis_url is None:
            handle = connect(
                None,
                settings.home_dir().buffer_dir,
                timeout=settings.redis_timeout_seconds,
                aof_fsync=settings.embedded_redis_fsync,
            )
            socket_file = getattr(handle.client, "socket_file", None)
            if not socket_file:
                raise RuntimeError("the embedded redis has no unix socket to share")
            os.environ["MARQUEE_REDIS_URL"] = f"unix://{socket_file}"
            yield handle.description
        else:
            yield "MARQUEE_REDIS_URL"
    finally:
        if handle is not None:
            handle.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
