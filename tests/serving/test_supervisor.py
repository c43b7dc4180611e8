"""serving.supervisor: a worker whose app cannot start stops the service instead of being
restarted forever; the port stays bound by the parent between workers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from serving import supervisor
from tests.serving.redis_server import free_port


def broken_app() -> FastAPI:
    """An app factory (run in the spawned worker) whose startup fails."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot open the graph")
        yield

    return FastAPI(lifespan=lifespan)


def unbuildable_app() -> FastAPI:
    """An app factory that raises before there is an app (uvicorn exits 1)."""
    raise RuntimeError("no such home")


@pytest.mark.skipif(not supervisor.available(), reason="no SO_REUSEPORT on this platform")
@pytest.mark.parametrize("factory", ["broken_app", "unbuildable_app"])
def test_a_worker_that_cannot_start_stops_the_service(factory: str) -> None:
    port = free_port()
    sup = supervisor.Supervisor(
        f"{__name__}:{factory}", "127.0.0.1", port, workers=2, options={"log_level": "error"}
    )
    t0 = time.monotonic()
    assert sup.run() == supervisor.STARTUP_FAILURE
    assert time.monotonic() - t0 < 120  # stopped, not restarted over and over


@pytest.mark.skipif(not supervisor.available(), reason="no SO_REUSEPORT on this platform")
def test_the_port_is_shared_only_through_reuseport() -> None:
    """Workers' sockets join one another on the port; a plain socket cannot take it."""
    port = free_port()
    held = supervisor.reuseport_socket("127.0.0.1", port, listen=False)
    worker = supervisor.reuseport_socket("127.0.0.1", port)
    try:
        plain = socket.socket()
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
        plain.close()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = worker.accept()  # the listening worker socket takes the connection
            conn.close()
    finally:
        worker.close()
        held.close()
