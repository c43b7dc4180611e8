"""``marquee serve --workers N``'s processes: N uvicorn workers, each listening on its own socket
bound to the one port (SO_REUSEPORT), so that the kernel spreads connections over them.

uvicorn's own ``--workers`` binds one socket in the parent and every worker accepts from it;
the worker that wakes first takes every connection waiting, so a burst of keep-alive
connections lands on one worker whose queue then sets the tail while the other idles
(measured at concurrency 32 with two workers: one worker held 26-32 of the 32 connections in
12 runs of 19, experiments/bench/serving_load.py's ``per_worker``). With a socket each,
the kernel hashes every new connection to one of the listening sockets.

``Supervisor`` keeps N workers alive: one that exits is replaced (one that exits before it
started serving stops them all, as a worker that cannot build its app would fail again, over
and over), and SIGINT or SIGTERM stops them, each with uvicorn's graceful shutdown. Between a
worker's exit and its replacement, the others take the new connections; those already queued
on the dead worker's socket are reset by the kernel. The parent keeps a bound socket (not
listening) on the port so that the port stays this service's while a worker restarts. Where
the platform has no SO_REUSEPORT, ``available()`` is False and the caller uses uvicorn's
shared socket.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit code when the app cannot start
BACKLOG = 2048  # uvicorn's default listen backlog


def available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def reuseport_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    """A TCP socket on (host, port) with SO_REUSEPORT, listening unless ``listen`` is False."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given, as uvicorn does: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says IPPROTO_TCP (with 0, replies waited on delayed ACKs: ~40 ms each)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def run_worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One worker process: its own listening socket, then uvicorn serving the app factory
    ``app`` on it (``options``: uvicorn.Config's other arguments)."""
    import uvicorn

    sock = reuseport_socket(host, port)
    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        if not server.started:  # the app could not be built or its startup failed (uvicorn
            sys.exit(STARTUP_FAILURE)  # returns or exits 1): say so, rather than be restarted


@dataclass
class Supervisor:
    """N processes running ``run_worker(app, host, port, options)``; ``run`` blocks until
    stopped (signal or ``stop``) and returns the exit code."""

    app: str
    host: str
    port: int
    workers: int
    options: dict[str, Any] = field(default_factory=dict)
    poll_seconds: float = 0.5
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _start(self) -> BaseProcess:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, as uvicorn's workers
        proc = ctx.Process(
            target=run_worker, args=(self.app, self.host, self.port, self.options), daemon=False
        )
        proc.start()
        return proc

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> int:
        held = reuseport_socket(self.host, self.port, listen=False)  # the port is ours
        self.port = held.getsockname()[1]  # port 0: the one the kernel chose, for every worker
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}
        procs = [self._start() for _ in range(self.workers)]
        code = 0
        try:
            while not self._stopping.wait(self.poll_seconds):
                for i, proc in enumerate(procs):
                    if proc.is_alive() or self._stopping.is_set():
                        continue
                    if proc.exitcode == STARTUP_FAILURE:
                        log.error("worker %s could not start; stopping the others", proc.pid)
                        code = STARTUP_FAILURE
                        self._stopping.set()
                        break
                    log.warning("worker %s exited (%s); starting another", proc.pid, proc.exitcode)
                    procs[i] = self._start()
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()  # SIGTERM: uvicorn's graceful shutdown
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            held.close()
        return code
