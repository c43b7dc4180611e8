"""Two versions of the 3-hop query's hub-split code (features/graph/hop_top.py) timed in one
process, on one operator, alternated user by user.

On a machine shared with other jobs the load drifts within a minute, and
``experiments.bench.scale`` run once per version (A B A B) could not separate a 6-11% change:
the second run of each pair was the slower whatever its version. Here both versions build their
split of the same hop operator and each user's query runs under both, in alternating order,
so drift falls on both alike; the answers are checked to be identical.

    nice -n 10 .venv/bin/python -m experiments.bench.hop_top_ab --home H \\
        --before /path/to/main-worktree/features/graph/hop_top.py [--users 100] [--json] \\
        [--threads 2] [--before-threads 1]

Times ``first_two_hops`` and ``top_last_hop`` (the query less its user lookup and output),
wall time and CPU of the whole process (every thread) per query, p50/p95/p99; "after" is the
``hop_top`` this checkout imports, run on ``--threads`` threads (unset: its configured count,
MARQUEE_GRAPH_THREADS or min(2, CPUs)). ``--before-threads`` passes a thread count to the
other version too (only to a version that takes one; unset: it is called without).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import tyro

from experiments.bench.scale import bench_users, load_average, percentiles

log = logging.getLogger(__name__)


@dataclass
class Args:
    """In-process A/B settings (every one is a command-line flag)."""

    before: Path  # the other version's hop_top.py
    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    users: int = 100  # users with a positive rating, each timed ``repeats`` times per version
    repeats: int = 2
    limit: int = 500
    seed: int = 3
    json: bool = False
    threads: int | None = None  # "after"'s thread count (None: its configured default)
    before_threads: int | None = None  # passed to "before" only when set


def load_module(path: Path, name: str) -> ModuleType:
    """``path`` imported as module ``name`` (registered, so that its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(args: Args) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    from features.graph import hop_top
    from features.graph import local_queries as queries
    from features.graph.local import LocalGraphStore

    versions = {"before": load_module(args.before.resolve(), "hop_top_before"), "after": hop_top}
    store = LocalGraphStore.open(args.home.expanduser().resolve() / "graph")
    state = store.state
    op = queries.hop_operator(state, queries.DEFAULT_HOP_WEIGHTS)
    splits: dict[str, Any] = {}
    build_s: dict[str, float] = {}
    for name, module in versions.items():
        c0 = time.process_time()
        splits[name] = module.hub_split(op)
        build_s[name] = round(time.process_time() - c0, 2)
    queries_in: list[tuple[np.ndarray, np.ndarray]] = []
    for user in bench_users(store, args.users, args.seed):
        movies, ratings, _ = queries.user_ratings(state, user)
        queries_in.append((np.unique(movies[ratings >= 4.0]), queries.seen_movies(state, user)))
    cpu_ms: dict[str, list[float]] = {name: [] for name in versions}
    wall_ms: dict[str, list[float]] = {name: [] for name in versions}
    threads = {"before": args.before_threads, "after": args.threads}
    start_load = load_average()
    for rep in range(args.repeats):
        for i, (seeds, seen) in enumerate(queries_in):
            order = list(versions) if (i + rep) % 2 == 0 else list(versions)[::-1]
            answers = {}
            for name in order:
                module, split = versions[name], splits[name]
                extra = () if threads[name] is None else (threads[name],)
                c0, w0 = time.process_time(), time.perf_counter()
                x1, x2 = module.first_two_hops(split, seeds, *extra)
                answers[name] = module.top_last_hop(split, x2, x1 + x2, seen, args.limit, *extra)
                wall_ms[name].append((time.perf_counter() - w0) * 1e3)
                cpu_ms[name].append((time.process_time() - c0) * 1e3)
            a, b = answers["before"], answers["after"]
            same = (a is None and b is None) or (
                a is not None
                and b is not None
                and np.array_equal(a[0], b[0])
                and np.array_equal(a[1], b[1])
            )
            if not same:
                raise SystemExit(f"query {i}: the two versions' answers differ")
    result = {
        "users": len(queries_in),
        "repeats": args.repeats,
        "build_cpu_s": build_s,
        "threads": {
            "before": args.before_threads,
            "after": hop_top.hop_threads.resolve(args.threads),
        },
        "wall_ms": {name: percentiles(ms) for name, ms in wall_ms.items()},
        "cpu_ms": {name: percentiles(ms) for name, ms in cpu_ms.items()},
        "load_average": {"start": start_load, "end": load_average()},
    }
    print(json.dumps(result, indent=1 if args.json else None))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
