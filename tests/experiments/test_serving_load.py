"""experiments/bench/serving_load.py's load generators count what a run must not hide: a slate
answered without its log (the breaker open, Redis refusing) is counted as "unlogged", and
an error status by its code, with both clients, against a real HTTP server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from experiments.bench.serving_load import _level
from tests.serving.redis_server import free_port


async def _recommendations(request: Request) -> Response:
    user = request.path_params["user"]
    if user.startswith("broken"):
        return JSONResponse({"detail": "no policy"}, status_code=503)
    # the service's body: compact JSON, as pydantic's model_dump_json writes it
    body = b'{"user":"%s","logged":%s,"items":[]}' % (
        user.encode(),
        b"false" if user.startswith("unlogged") else b"true",
    )
    return Response(body, media_type="application/json")


async def _ok(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/v1/users/{user}/recommendations", _recommendations),
            Route("/healthz", _ok),
            Route("/readyz", _ok),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("client", ["raw", "httpx"])
def test_unlogged_slates_and_errors_are_counted(base: str, client: str) -> None:
    users = ["u1", "unlogged-1", "u2", "broken-1", "unlogged-2", "u3"] * 5
    level = asyncio.run(_level(base, users, 10, 4, client))
    assert level["failed"] == {"unlogged": 10, "503": 5}
    assert level["n"] == len(users)  # every request was answered and timed
