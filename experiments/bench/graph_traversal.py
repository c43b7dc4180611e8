"""Benchmark of the embedded graph store at catalogue scale: load time, memory, k-hop latency.

Generates the synthetic graph, upserts it into a LocalGraphStore, saves it, times a fresh load,
gives ``users`` random users ``positives`` ratings of 5.0 each, then times ``khop_scores`` for
each of them. Usage::

    .venv/bin/python -m experiments.bench.graph_traversal [--hops 3] [--limit 500] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic

log = logging.getLogger(__name__)


@dataclass
class Args:
    """Benchmark settings (every one is a command-line flag)."""

    seed: int = 0
    movies: int = 100_000
    people: int = 300_000
    users: int = 10_000
    bench_users: int = 200
    positives: int = 50
    hops: int = 3
    limit: int | None = 500  # 0 means no limit: every scored movie is returned and sorted
    repeats: int = 1
    json: bool = False


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        name = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(name, action="store_true")
        else:
            parser.add_argument(name, type=int, default=f.default)
    ns = vars(parser.parse_args(argv))
    if ns["limit"] == 0:
        ns["limit"] = None
    return Args(**ns)


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def positives_batch(
    store: LocalGraphStore, args: Args, rng: np.random.Generator
) -> tuple[GraphBatch, list[str]]:
    """``positives`` 5.0 ratings for each of ``bench_users`` random users."""
    users = store.vertex_frame(VertexKind.USER)["key"].to_numpy(dtype=object)
    movies = store.vertex_frame(VertexKind.MOVIE)["key"].to_numpy(dtype=object)
    chosen = rng.choice(users, args.bench_users, replace=False)
    picks = np.concatenate([rng.choice(len(movies), args.positives, replace=False) for _ in chosen])
    batch = GraphBatch()
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            {
                "src": np.repeat(chosen, args.positives),
                "dst": movies[picks],
                "rating": 5.0,
                "timestamp": 1_700_000_000,
            }
        ),
    )
    return batch, [str(u) for u in chosen]


def run(args: Args) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    out: dict[str, object] = {"config": dataclasses.asdict(args)}
    t0 = time.perf_counter()
    batch = generate_synthetic(
        movies=args.movies, people=args.people, users=args.users, seed=args.seed
    )
    out["generate_s"] = time.perf_counter() - t0
    store = LocalGraphStore()
    t0 = time.perf_counter()
    store.upsert(batch)
    out["upsert_s"] = time.perf_counter() - t0
    extra, bench_users = positives_batch(store, args, rng)
    t0 = time.perf_counter()
    store.upsert(extra)
    out["upsert_positives_s"] = time.perf_counter() - t0
    counts = store.counts()
    out["vertices"] = sum(counts[k.value] for k in VertexKind)
    out["edges"] = sum(counts[k.value] for k in EdgeKind)
    del batch, extra

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph"
        t0 = time.perf_counter()
        store.save(path)
        out["save_s"] = time.perf_counter() - t0
        out["saved_mb"] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
        del store
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        loaded = LocalGraphStore.open(path)
        out["load_s"] = time.perf_counter() - t0
        out["load_rss_delta_mb"] = _rss_mb() - rss0
        out["array_mb"] = loaded.nbytes() / 2**20

    t0 = time.perf_counter()
    loaded.khop_scores(bench_users[0], hops=args.hops, limit=args.limit)
    out["first_query_s"] = time.perf_counter() - t0  # builds and caches the hop operator
    times: list[float] = []
    sizes: list[int] = []
    for _ in range(args.repeats):
        for user in bench_users:
            t0 = time.perf_counter()
            res = loaded.khop_scores(user, hops=args.hops, limit=args.limit)
            times.append((time.perf_counter() - t0) * 1e3)
            sizes.append(len(res))
    ms = np.asarray(times)
    out["khop_ms"] = {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "max": float(ms.max()),
        "queries": len(ms),
    }
    out["khop_results_median"] = float(np.median(sizes))
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    log.info("config: %s", dataclasses.asdict(args))
    result = run(args)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    for key, value in result.items():
        if key != "config":
            print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
