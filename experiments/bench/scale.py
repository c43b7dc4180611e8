"""The embedded store at the seed's full scale: load, memory, save, 3-hop, first request, env.

Runs on a home whose graph is already there (generating 500K movies takes minutes; do it once):

    marquee --home H ingest synthetic --movies 500000 --people 1500000 --users 100000
    marquee --home H train --timesteps 400 --alias champion     # for --recommend / --env-steps
    nice -n 10 .venv/bin/python -m experiments.bench.scale --home H [--hub-caps 200] [--json]
    nice -n 10 .venv/bin/python -m experiments.bench.scale --home H --workers 1 2 --no-khop ...

Measures, each as p50/p95/p99 where it is a distribution:

- ``load``: ``LocalGraphStore.open`` in ``--load-repeats`` fresh processes (the OS page cache
  warm, as for a restarted service), with each one's RSS and PSS right after the load;
- ``save``: saving the loaded graph to a new folder beside it (every upsert does this);
- ``khop``: ``khop_scores(user, hops, limit)`` for ``--bench-users`` users with positives,
  exact and for each ``--hub-caps`` value, wall and CPU time (the machine is shared: CPU time
  says what a query costs, wall time what it took), and the process's RSS/PSS afterwards;
- ``recommend``: a user's first recommendation through the policy path the service serves
  (history -> state -> candidates -> actor -> ranking, serving.policy_source's pool with the
  home's champion), each user once, so every request is a first one;
- ``env``: simulator steps/s under random actions on the home's world;
- ``share``: N processes open the same graph and query it; each one's RSS and PSS of the
  pages mapped from the graph's files (/proc/PID/smaps): shared, PSS is RSS / N;
- ``workers``: ``marquee serve --workers N`` for each N: after ``--worker-requests`` requests,
  every worker's RSS and PSS (/proc/PID/smaps_rollup) and its mapped graph pages;
  ``--smaps-top N`` adds its N largest mappings and totals per folder (``smaps.py``).

Every figure comes with the load average when it was taken (``uptime``'s three numbers). The
in-process measurements run with the allocator settings a served worker has
(``serving.allocator.tune``, as ``marquee serve`` applies them); ``--no-served-allocator``
leaves glibc's defaults.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tyro

log = logging.getLogger(__name__)


@dataclass
class Args:
    """Full-scale benchmark settings (every one is a command-line flag)."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    load_repeats: int = 5  # fresh processes timing a load
    save: bool = True  # time a save of the loaded graph (writes a copy beside it, then removes it)
    khop: bool = True
    bench_users: int = 100  # users timed for k-hop (those with a positive rating)
    hops: int = 3
    limit: int = 500
    hub_caps: tuple[int, ...] = ()  # k-hop also with these hub caps (exact is always timed)
    recommend: bool = True  # needs the home's world and a registered champion
    recommend_users: int = 200
    k: int = 10
    env_steps: int = 2000  # 0: skip
    share: tuple[int, ...] = ()  # e.g. 1 2: N processes query one graph; mapped RSS/PSS each
    workers: tuple[int, ...] = ()  # e.g. 1 2: RSS/PSS of `marquee serve --workers N`
    worker_requests: int = 100
    smaps_top: int = 0  # >0: each worker's largest mappings after the requests (bench/smaps.py)
    seed: int = 0
    served_allocator: bool = True  # malloc tuned as in a served worker (module doc)
    json: bool = False


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (os.getloadavg)."""
    return [round(x, 2) for x in os.getloadavg()]


def memory(pid: int | str = "self") -> dict[str, float]:
    """RSS and PSS in MB of a process, from /proc/PID/smaps_rollup (PSS divides each shared
    page between the processes that map it, so N workers' PSS add up to what they cost)."""
    out: dict[str, float] = {}
    names = {
        "Rss:": "rss_mb",
        "Pss:": "pss_mb",
        "Shared_Clean:": "shared_clean_mb",
        "Private_Clean:": "private_clean_mb",  # file pages only this process maps (yet)
        "Private_Dirty:": "private_dirty_mb",
        "Anonymous:": "anonymous_mb",  # heap: never shared, whatever else maps the files
    }
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in names:
            out[names[parts[0]]] = round(int(parts[1]) / 1024, 1)
    return out


def mapped(pid: int | str, folder: Path) -> dict[str, float]:
    """RSS and PSS in MB of the pages a process maps from files under ``folder`` (the
    graph's data folder), from /proc/PID/smaps: with N processes sharing them, PSS is RSS/N."""
    rss = pss = 0
    inside = False
    prefix = str(folder)
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5].startswith(prefix)
        elif inside and head and head[0] == "Rss:":
            rss += int(head[1])
        elif inside and head and head[0] == "Pss:":
            pss += int(head[1])
    return {"graph_rss_mb": round(rss / 1024, 1), "graph_pss_mb": round(pss / 1024, 1)}


def share_probe(graph: str, users: int) -> None:
    """Child process: load the graph, read ``users`` users' movies and 1-hop scores (touching
    the mapped pages), report, then wait on stdin so that siblings are measured together."""
    from features.graph.local import LocalGraphStore

    store = LocalGraphStore.open(Path(graph))
    for user in bench_users(store, users, 0):
        store.user_movies(user)
        store.khop_scores(user, hops=1, limit=50)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    sys.stdin.read()


def run_share(args: Args, n: int) -> dict[str, Any]:
    """``n`` processes open the same graph and query it; each one's mapped graph pages."""
    graph = (args.home / "graph").resolve()
    code = (
        "from experiments.bench.scale import share_probe; "
        f"share_probe({str(graph)!r}, {args.bench_users})"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(n)
    ]
    try:
        pids = [json.loads(p.stdout.readline())["pid"] for p in procs]  # type: ignore[union-attr]
        per = {str(pid): {**memory(pid), **mapped(pid, graph)} for pid in pids}
    finally:
        for p in procs:
            p.communicate("")
    return {
        "processes": n,
        "per_process": per,
        "graph_pss_total_mb": round(sum(m["graph_pss_mb"] for m in per.values()), 1),
        "load_average": load_average(),
    }


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(a.max()), 2),
        "n": int(a.size),
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, CPU ms of the whole process, every thread) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def load_probe(graph: str) -> None:
    """Child process: load the graph, print load seconds and memory as JSON."""
    from features.graph.local import LocalGraphStore

    before = memory()
    t0 = time.perf_counter()
    store = LocalGraphStore.open(Path(graph))
    load_s = time.perf_counter() - t0
    after = memory()
    store.counts()  # the store is alive while its memory is read
    print(json.dumps({"load_s": load_s, "before": before, "after": after}))


def run_load(args: Args) -> dict[str, Any]:
    graph = args.home / "graph"
    runs = []
    for _ in range(args.load_repeats):
        code = f"from experiments.bench.scale import load_probe; load_probe({str(graph)!r})"
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "load_s": percentiles([r["load_s"] for r in runs]),
        "memory_after_load": runs[-1]["after"],
        "memory_before_load": runs[-1]["before"],
        "load_average": load_average(),
    }


def bench_users(store: Any, n: int, seed: int) -> list[str]:
    """``n`` random users with at least one rating of 4 or more."""
    from features.graph.local_queries import user_ratings
    from features.graph.schema import VertexKind

    state = store.state
    keys = state.vertices[VertexKind.USER].keys
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for i in rng.permutation(len(keys)):
        _, ratings, _ = user_ratings(state, str(keys[i]))
        if np.any(np.asarray(ratings) >= 4.0):
            out.append(str(keys[i]))
            if len(out) == n:
                break
    return out


def run_khop(args: Args) -> dict[str, Any]:
    from features.graph.local import LocalGraphStore

    out: dict[str, Any] = {"memory_start": memory()}
    graph = args.home / "graph"
    store = LocalGraphStore.open(graph)
    users = bench_users(store, args.bench_users + 1, args.seed)
    if args.save:
        target = Path(tempfile.mkdtemp(prefix="scale-save-", dir=args.home))
        try:
            wall, _ = _timed(lambda: store.save(target))
            out["save"] = {"wall_s": round(wall / 1e3, 2), "load_average": load_average()}
        finally:
            shutil.rmtree(target, ignore_errors=True)
    for cap in (None, *args.hub_caps):
        # no keyword when exact, so that this script also times stores from before hub caps
        store = (
            LocalGraphStore.open(graph) if cap is None else LocalGraphStore.open(graph, hub_cap=cap)
        )

        def query(u: str, s: LocalGraphStore = store) -> None:
            s.khop_scores(u, hops=args.hops, limit=args.limit or None)

        first_wall, _ = _timed(lambda: query(users[0]))  # builds and caches the operator
        times = [_timed(lambda u=u: query(u)) for u in users[1:]]  # type: ignore[misc]
        out["exact" if cap is None else f"hub_cap_{cap}"] = {
            "first_query_s": round(first_wall / 1e3, 2),
            "wall_ms": percentiles([w for w, _ in times]),
            "cpu_ms": percentiles([c for _, c in times]),
            "load_average": load_average(),
            "memory_after": memory(),
        }
    return out


def run_recommend(args: Args) -> dict[str, Any]:
    """First recommendations through the served policy path (each user once)."""
    from features.graph.factory import open_store
    from marquee.home import Home
    from serving.ab import Arm
    from serving.policy_source import PolicyPool
    from serving.settings import Settings

    store = open_store(Home(args.home))
    users = bench_users(store, args.recommend_users + 1, args.seed + 1)
    pool = PolicyPool(Settings(home=args.home))
    t0 = time.perf_counter()
    rec = pool(Arm(name="bench", policy="champion", share=1.0), store)
    startup = time.perf_counter() - t0
    if rec.policy_version == "popularity":
        return {"skipped": f"no champion policy is served ({pool.status()})"}
    rec.recommend(users[0], args.k)  # the first call builds what the ranker caches
    times = [_timed(lambda u=u: rec.recommend(u, args.k)) for u in users[1:]]  # type: ignore[misc]
    return {
        "policy_version": rec.policy_version,
        "startup_s": round(startup, 2),
        "wall_ms": percentiles([w for w, _ in times]),
        "cpu_ms": percentiles([c for _, c in times]),
        "load_average": load_average(),
        "memory_after": memory(),
    }


def run_env(args: Args) -> dict[str, Any]:
    from env.movie_rec_env import MovieRecEnv
    from env.world import SimulationWorld
    from marquee.home import Home

    t0 = time.perf_counter()
    world = SimulationWorld.load(Home(args.home).world_dir)
    load_s = time.perf_counter() - t0
    e = MovieRecEnv(world)
    rng = np.random.default_rng(args.seed)
    shape = e.action_space.shape or ()
    actions = rng.uniform(-1, 1, (args.env_steps, *shape)).astype(np.float32)
    e.reset(seed=args.seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = e.step(a)
        if term or trunc:
            e.reset()
    secs = time.perf_counter() - t0
    return {
        "world_load_s": round(load_s, 2),
        "steps": args.env_steps,
        "steps_per_s": round(args.env_steps / secs, 1),
        "load_average": load_average(),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_pids(parent: int) -> list[int]:
    """The worker processes under ``parent`` (uvicorn's spawned interpreters), from /proc."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return sorted(found)


def run_workers(args: Args, n: int) -> dict[str, Any]:
    """``marquee serve --workers n`` on a free port: RSS/PSS of its workers once ready and
    after ``worker_requests`` requests (each user's first), and those requests' latency."""
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()"]
    cmd += ["--home", str(args.home), "serve"]
    cmd += ["--port", str(port), "--workers", str(n), "--log-level", "warning"]
    env = {**os.environ, "MARQUEE_HOME": str(args.home)}
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1800):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the service did not become ready")
        from features.graph.factory import open_store
        from marquee.home import Home

        users = bench_users(open_store(Home(args.home)), args.worker_requests, args.seed + 2)
        pids = _serving_pids(proc.pid, n)
        ready = {str(p): memory(p) for p in pids}
        wall: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for u in users:  # fresh connections spread requests over the workers
                client.headers["connection"] = "close"
                t0 = time.perf_counter()
                client.get(f"/v1/users/{u}/recommendations?k={args.k}").raise_for_status()
                wall.append((time.perf_counter() - t0) * 1e3)
        graph = (args.home / "graph").resolve()
        per = {str(p): {**memory(p), **mapped(p, graph)} for p in pids}
        extra: dict[str, Any] = {}
        if args.smaps_top:
            from experiments.bench.smaps import top_mappings

            extra["mappings"] = {str(p): top_mappings(p, args.smaps_top) for p in pids}
        return {
            **extra,
            "workers": n,
            "per_process_ready": ready,
            "requests_wall_ms": percentiles(wall),
            "per_process": per,
            "rss_total_mb": round(sum(m["rss_mb"] for m in per.values()), 1),
            "pss_total_mb": round(sum(m["pss_mb"] for m in per.values()), 1),
            "load_average": load_average(),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _serving_pids(parent: int, n: int) -> list[int]:
    """The processes that hold an app: the parent itself with one worker, else its spawned
    workers (uvicorn's children started by multiprocessing's spawn; the resource tracker and
    the embedded Redis are left out)."""
    if n == 1:
        return [parent]
    kids = worker_pids(parent)  # also multiprocessing's resource tracker: not an app
    return [p for p in kids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def main(args: Args) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    args.home = args.home.expanduser().resolve()
    from features.graph.local_files import MANIFEST

    if not (args.home / "graph" / MANIFEST).exists():
        raise SystemExit(f"{args.home}: no embedded graph; run `marquee ingest synthetic` first")
    manifest = json.loads((args.home / "graph" / MANIFEST).read_text())
    tuned = False
    if args.served_allocator:
        from serving import allocator

        tuned = allocator.tune()
    result: dict[str, Any] = {
        "config": {k: str(v) for k, v in dataclasses.asdict(args).items()},
        "allocator_tuned": tuned,
        "movies": manifest["vertices"].get("movies", {}).get("count", 0),
        "edges": sum(e["count"] for e in manifest["edges"].values()),
        "cpus": os.cpu_count(),
        "load_average_start": load_average(),
    }
    if args.load_repeats:
        result["load"] = run_load(args)
    if args.khop:
        result["khop"] = run_khop(args)
    if args.recommend:
        result["recommend"] = run_recommend(args)
    if args.env_steps:
        result["env"] = run_env(args)
    for n in args.share:
        result[f"share_{n}"] = run_share(args, n)
    for n in args.workers:
        result[f"workers_{n}"] = run_workers(args, n)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key}: {json.dumps(value)}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
