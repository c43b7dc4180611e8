"""One Redis URL for a single server or a Redis Cluster: ask the server whether it runs in
cluster mode (INFO's ``cluster_enabled``) and return redis-py's cluster client if so.

With a cluster, any node's address will do: the cluster client learns the others from it.
Marquee's keys are hash-tagged (agent.buffers.hash_tag), so its scripts and transactions work
there unchanged. The cluster client is returned typed as ``redis.Redis``: it offers the same
commands Marquee uses (strings, hashes, sets, streams, scripts, pipelines of one slot).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)


def cluster_enabled(client: redis.Redis) -> bool:
    """Whether the server behind ``client`` is a node of a Redis Cluster."""
    info: dict[str, Any] = client.info("cluster")  # type: ignore[assignment]
    return bool(int(info.get("cluster_enabled", 0) or 0))


def is_cluster_client(client: object) -> bool:
    """Whether ``client`` is redis-py's cluster client."""
    return isinstance(client, RedisCluster)


def client_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``: a cluster client when the server there is a cluster node, else a
    plain one. When the server cannot be asked (down at start), a plain client is returned and
    a warning logged: a single server then works once it is back, a cluster does not (its
    nodes answer MOVED) until the process restarts."""
    plain = redis.Redis.from_url(url, **options)
    try:
        clustered = cluster_enabled(plain)
    except redis.RedisError as exc:
        log.warning(
            "could not ask redis whether it is a cluster (%s); using a single-server client",
            type(exc).__name__,
        )
        return plain
    if not clustered:
        return plain
    plain.close()
    return cast(redis.Redis, RedisCluster.from_url(url, **options))
