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
