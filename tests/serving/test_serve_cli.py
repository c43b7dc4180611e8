"""``marquee serve`` in a real subprocess: it answers, and its access log masks secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from serving.cli import RedactQueryFilter
from tests.serving.redis_server import free_port

DEADLINE = 120.0  # hang guard while uvicorn starts, not a speed check


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("POST /v1/plex/webhook?secret=abc HTTP/1.1", "POST /v1/plex/webhook?secret=*** HTTP/1.1"),
        ("GET /x?a=1&X-Plex-Token=t0k&b=2", "GET /x?a=1&X-Plex-Token=***&b=2"),
        ("GET /x?token=t&api_key=k", "GET /x?token=***&api_key=***"),
        ("GET /v1/users/secret=1/recommendations", "GET /v1/users/secret=1/recommendations"),
    ],
)
def test_redact_filter(line: str, expected: str) -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access", 20, "f", 1, '%s - "%s" %d', ("1.2.3.4", line, 200), None
    )
    RedactQueryFilter().filter(record)
    assert record.getMessage() == f'1.2.3.4 - "{expected}" 200'


def test_serve_answers_and_never_logs_the_webhook_secret(
    tmp_path: Path, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    kw = client.connection_pool.connection_kwargs
    port = free_port()
    env = {
        **os.environ,
        "MARQUEE_REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}",
        "MARQUEE_REDIS_PREFIX": prefix,
        "MARQUEE_PLEX_WEBHOOK_SECRET": "hush-hush-123",
    }
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()"]
    cmd += ["--home", str(tmp_path / "home"), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, "marquee serve exited"
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < end, "marquee serve did not start"
                time.sleep(0.2)
        assert ready.status_code == 200
        assert ready.json()["policies"]["champion"].endswith("serving popularity")
        payload = {"event": "media.play", "Account": {"title": "ann"}, "Metadata": {}}
        res = httpx.post(
            f"{base}/v1/plex/webhook?secret=hush-hush-123&X-Plex-Token=plex-tok-9",
            data={"payload": json.dumps(payload)},
            timeout=10,
        )
        assert res.status_code in (200, 400)  # either way the request was logged
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "/v1/plex/webhook?secret=***&X-Plex-Token=***" in out
    assert "hush-hush-123" not in out and "plex-tok-9" not in out


def _spawned_workers(parent: int) -> list[int]:
    """uvicorn's worker processes under ``parent`` (multiprocessing spawn children; not its
    resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_serve_with_workers_shares_one_embedded_redis(tmp_path: Path) -> None:
    """``serve --workers 2`` with no MARQUEE_REDIS_URL: two worker processes answer on one
    port, the embedded Redis is started once by the parent and used by both, and it keeps
    everything they stored after they stop."""
    from agent.buffers.hash_tag import FEEDBACK, tag
    from serving.redis_conn import connect

    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MARQUEE_REDIS_URL"}
    env["MARQUEE_API_TOKEN"] = "workers-token"
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()"]
    cmd += ["--home", str(home), "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer workers-token"}
    try:
        end = time.monotonic() + 2 * DEADLINE
        while len(_spawned_workers(proc.pid)) < 2 or not _ready(base):
            assert proc.poll() is None, "marquee serve --workers 2 exited"
            assert time.monotonic() < end, "marquee serve --workers 2 did not start"
            time.sleep(0.3)
        assert len(_spawned_workers(proc.pid)) == 2
        for i in range(20):  # a new connection each: the kernel hands them to either worker
            event = {"event_id": f"w{i}", "type": "skipped", "recommendation_id": f"r{i}"}
            res = httpx.post(f"{base}/v1/feedback", json=event, headers=auth, timeout=10)
            assert res.status_code == 200 and res.json()["spooled"] is False, res.text
        assert httpx.get(f"{base}/readyz", timeout=5).json()["redis"] == "ok"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out[-2000:]
    handle = connect(None, home / "buffer")  # the parent shut it down; its data is on disk
    try:
        assert handle.client.zcard(f"{tag('marquee', FEEDBACK)}:seen") == 20
    finally:
        handle.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_workers_get_time_to_build_a_large_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no SO_REUSEPORT, uvicorn's own workers serve, and uvicorn kills a worker
    that misses its 5 s ping; one building a 500K-movie bundle on busy cores does, so
    ``--workers`` gives them HEALTHCHECK_SECONDS."""
    import contextlib

    import uvicorn

    import serving.supervisor as supervisor
    import serving.workers as workers
    from marquee.home import Home
    from serving.cli import _serve_workers

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(supervisor, "available", lambda: False)
    monkeypatch.setattr(
        workers, "worker_environment", lambda home: contextlib.nullcontext("test redis")
    )
    _serve_workers(Home(tmp_path), "127.0.0.1", 0, 2, "warning", False)
    assert seen["workers"] == 2
    assert seen["timeout_worker_healthcheck"] == workers.HEALTHCHECK_SECONDS >= 60


def _worker_of_each(base: str, connections: int) -> list[int]:
    """The worker (pid) that holds each of ``connections`` new keep-alive connections."""
    clients = [httpx.Client(base_url=base, timeout=10) for _ in range(connections)]
    try:
        return [int(c.get("/readyz").json()["worker"]) for c in clients]
    finally:
        for c in clients:
            c.close()


def test_workers_share_connections_and_are_replaced(tmp_path: Path) -> None:
    """``serve --workers 2`` (serving.supervisor): each worker listens on its own socket, so
    a burst of connections reaches both (with uvicorn's shared socket one worker often took
    26-32 of 32); a worker that dies is replaced and the port keeps answering; SIGTERM stops all."""
    import signal

    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MARQUEE_REDIS_URL"}
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()"]
    cmd += ["--home", str(home), "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"

    def wait_for_two() -> list[int]:
        end = time.monotonic() + 2 * DEADLINE
        while True:
            pids = _spawned_workers(proc.pid)
            if len(pids) == 2 and _ready(base):
                return pids
            assert proc.poll() is None, "marquee serve --workers 2 exited"
            assert time.monotonic() < end, "marquee serve --workers 2 did not start"
            time.sleep(0.3)

    try:
        first = wait_for_two()
        owners = _worker_of_each(base, 32)
        assert set(owners) == set(first), owners  # both hold connections (all on one: 2^-31)
        os.kill(first[0], signal.SIGKILL)
        second = wait_for_two()
        assert first[0] not in second and first[1] in second
        assert set(_worker_of_each(base, 32)) == set(second)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out[-2000:]
    assert "exited" in out and "starting another" in out, out[-2000:]
    assert _spawned_workers(proc.pid) == []
