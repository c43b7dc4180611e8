"""Latency and throughput of GET /v1/users/{user}/recommendations with the DDPG policy.

Measures p50/p95 of: the policy recommender alone (history -> state -> actor -> ranking; first
pass cold, second pass with the per-user state cache warm); sequential requests in-process
(the ASGI app through httpx's ASGI transport, no socket: routing, validation, explanations,
recommendation log in Redis), timed by the client and, inside the app, from the ASGI call to
its last message ("server": the service's own work, without the test client's); the same over
HTTP (uvicorn on 127.0.0.1 in a subprocess, one worker); then throughput with 8 concurrent
clients over HTTP. Users: 90 % known users of the graph, 10 % unknown (cold start). Without
precomputing, a known user's first request computes their state and candidates from the graph
and later ones hit the per-user cache, so the figures depend on how often users repeat:
"first_requests" says how many of the timed requests were a user's first (on the 10K-user
synthetic graph nearly all). With precomputing (serving.precompute, the default) the service
computes every known user's ahead; the in-process and HTTP runs wait until its warm-up is done
(readyz), so a known user's first request is a cache hit too.

    marquee --home H ingest movielens            # or: ingest synthetic (100K movies, 300K
    marquee --home H train --timesteps 1500 --alias champion    #  people, 10K users)
    python experiments/bench/serving_latency.py --home H [--requests 300] [--json]

The home's champion must be registered (else the service falls back to popularity, and this
script stops). Uses MARQUEE_REDIS_URL if set, else the embedded Redis in the home folder.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tyro

from marquee.home import Home


def _pcts(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "n": len(samples),
    }


def _users(home: Path, n: int, seed: int) -> list[str]:
    from features.graph.factory import open_store
    from features.graph.schema import VertexKind

    store = open_store(Home(home))
    known = store.vertex_frame(VertexKind.USER)["key"].astype(str).tolist()
    store.close()
    if not known:
        sys.exit(f"no users in the graph at {home}: run `marquee --home {home} ingest movielens`")
    rng = random.Random(seed)
    return [rng.choice(known) if rng.random() < 0.9 else f"new-user-{i}" for i in range(n)]


def _counts(home: Path) -> dict[str, int]:
    from features.graph.factory import open_store

    store = open_store(Home(home))
    try:
        return store.counts()
    finally:
        store.close()


def _timed(get: Callable[[str], int], users: list[str]) -> list[float]:
    out = []
    for user in users:
        t0 = time.perf_counter()
        status = get(user)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET for {user!r} returned {status}")
    return out


def recommender_only(home: Path, users: list[str], k: int) -> dict[str, object]:
    """The policy path alone, as the route calls it (no HTTP, explanations or logging)."""
    from features.graph.factory import open_store
    from serving.ab import Arm
    from serving.policy_source import PolicyPool
    from serving.settings import Settings

    store = open_store(Home(home))
    pool = PolicyPool(Settings(home=home))
    rec = pool(Arm(name="bench", policy="champion", share=1.0), store)
    if rec.policy_version == "popularity":
        sys.exit(f"{home}: no champion policy is served ({pool.status()}); train one first")

    def call(u: str) -> int:
        rec.recommend(u, k)
        return 200

    cold = _pcts(_timed(call, users))
    warm = _pcts(_timed(call, users))
    store.close()
    return {"policy_version": rec.policy_version, "cold": cold, "warm": warm}


def in_process(home: Path, users: list[str], k: int, prewarm: bool = False) -> dict[str, object]:
    """The whole ASGI app (middleware, routing, validation, the sync route in the threadpool,
    explanations, the Redis log, JSON) driven from one event loop through httpx's ASGI
    transport: everything but the socket. (Starlette's TestClient would add a second thread
    and a blocking portal hop per request, which measures the test harness, not the service.)"""
    import asyncio

    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(home=home))
    server: list[float] = []

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        await app(scope, receive, send)
        server.append(time.perf_counter() - t0)

    async def run() -> dict[str, object]:
        transport = httpx.ASGITransport(app=timed)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as api,
        ):
            ready = (await api.get("/readyz")).json()
            while not (ready.get("precompute") or {"warm": True})["warm"]:
                await asyncio.sleep(0.2)  # the known users' states, computed ahead
                ready = (await api.get("/readyz")).json()
            arms = ready["arms"]

            async def get(u: str) -> float:
                t0 = time.perf_counter()
                status = (await api.get(f"/v1/users/{u}/recommendations?k={k}")).status_code
                if status != 200:
                    raise RuntimeError(f"GET for {u!r} returned {status}")
                return time.perf_counter() - t0

            for u in users[:20] if not prewarm else users:
                await get(u)
            server.clear()
            client = _pcts([await get(u) for u in users])
            return {**client, "server": _pcts(server), "arms": arms}

    return asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(
    home: Path, users: list[str], k: int, concurrency: int, prewarm: bool = False
) -> dict[str, object]:
    port = _free_port()
    env = {**os.environ, "MARQUEE_HOME": str(home)}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("uvicorn did not become ready")
        while not (httpx.get(f"{base}/readyz", timeout=5).json().get("precompute") or {}).get(
            "warm", True
        ):
            time.sleep(0.2)  # one worker: its warm-up of the known users' states
        with httpx.Client(base_url=base, timeout=30) as client:

            def get(u: str) -> int:
                return client.get(f"/v1/users/{u}/recommendations?k={k}").status_code

            _timed(get, users[:20] if not prewarm else users)
            sequential = _pcts(_timed(get, users))
        lat: list[float] = []
        lock = threading.Lock()
        chunks = [users[i::concurrency] for i in range(concurrency)]

        def worker(part: list[str]) -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                got = _timed(
                    lambda u: c.get(f"/v1/users/{u}/recommendations?k={k}").status_code, part
                )
            with lock:
                lat.extend(got)

        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        return {
            "sequential": sequential,
            "concurrent": {
                **_pcts(lat),
                "concurrency": concurrency,
                "requests_per_s": round(len(lat) / wall, 1),
            },
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Args:
    """Serving latency and throughput."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    requests: int = 300
    k: int = 10
    concurrency: int = 8
    seed: int = 0
    # Request every user once, untimed, before the in-process and HTTP timings: what the
    # precompute warm-up provides, where its 10K users take longer than the run may (use with
    # MARQUEE_PRECOMPUTE=false).
    prewarm: bool = False
    json: bool = False  # print the figures as JSON


def main(args: Args) -> None:
    home = args.home.expanduser().resolve()
    users = _users(home, args.requests, args.seed)
    counts = _counts(home)
    earlier = set(users[:20])  # the warm-up requests of the in-process and HTTP runs
    first = 0
    for u in users:
        first += u not in earlier and not u.startswith("new-user-")
        earlier.add(u)
    result: dict[str, Any] = {
        "home": str(home),
        "movies": counts.get("movies", 0),
        "users": counts.get("users", 0),
        "k": args.k,
        "requests": args.requests,
        "first_requests": first,  # timed requests that were a known user's first
        "cpus": os.cpu_count(),
        "recommender": recommender_only(home, users, args.k),
        "prewarm": args.prewarm,
        "in_process": in_process(home, users, args.k, args.prewarm),
        "http": over_http(home, users, args.k, args.concurrency, args.prewarm),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ip, http = result["in_process"], result["http"]
    seq, conc = http["sequential"], http["concurrent"]  # type: ignore[index]
    rec = result["recommender"]
    print(
        f"graph {home} ({result['movies']} movies), k={args.k}, {args.requests} requests, "
        f"90% known users ({first} of them a user's first request), "
        f"policy {rec['policy_version']}"  # type: ignore[index]
    )
    for phase in ("cold", "warm"):
        r = rec[phase]  # type: ignore[index]
        print(f"policy {phase:4s}    p50 {r['p50_ms']:7.2f} ms   p95 {r['p95_ms']:7.2f} ms")
    print(f"in-process     p50 {ip['p50_ms']:7.2f} ms   p95 {ip['p95_ms']:7.2f} ms")
    sv = ip["server"]  # type: ignore[index]
    print(f"  app alone    p50 {sv['p50_ms']:7.2f} ms   p95 {sv['p95_ms']:7.2f} ms")
    print(f"HTTP           p50 {seq['p50_ms']:7.2f} ms   p95 {seq['p95_ms']:7.2f} ms")
    print(
        f"HTTP x{conc['concurrency']}        p50"
        f"  {conc['p50_ms']:7.2f} ms   p95 {conc['p95_ms']:7.2f} ms"
        f"   {conc['requests_per_s']} req/s"
    )


if __name__ == "__main__":
    main(tyro.cli(Args))
