"""Benchmark of the graph stores at catalogue scale: load time, memory, k-hop latency.

Generates the synthetic graph and gives ``bench_users`` random users ``positives`` ratings of
5.0 each, then times ``khop_scores`` for each of them.

- ``--store local`` (default): the embedded store; upserts, saves, times a fresh load, then the
  queries.
- ``--store arango``: the ArangoDB store on the server at ``--arango-url`` (default
  $MARQUEE_ARANGO_URL) in a fresh database (dropped afterwards unless ``--keep``): times the
  import (transaction-sized parts), the first k-hop query (it builds the movie-graph snapshot),
  the default engine per query, and the all-AQL engine for ``--aql-users`` users, checking that
  both engines return the same movies.
- ``--work``: no server needed; counts, on the generated graph, the edges the all-AQL k-hop
  reads per hop (both aggregated steps) and the frontier sizes, the figures behind the choice
  of the default engine.

Usage::

    .venv/bin/python -m experiments.bench.graph_traversal [--hops 3] [--limit 500] [--json]
    .venv/bin/python -m experiments.bench.graph_traversal --store arango --arango-url URL
    .venv/bin/python -m experiments.bench.graph_traversal --work
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

import numpy as np
import pandas as pd
import tyro
from scipy import sparse

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    EdgeKind,
    VertexKind,
)
from features.graph.store import GraphStore
from features.importers.synthetic import generate_synthetic

log = logging.getLogger(__name__)


@dataclass
class Args:
    """Benchmark settings (every one is a command-line flag)."""

    store: Literal["local", "arango"] = "local"
    arango_url: str = ""  # default: $MARQUEE_ARANGO_URL
    arango_user: str = "root"
    arango_password: str = ""  # default: $MARQUEE_ARANGO_PASSWORD
    keep: bool = False  # keep the ArangoDB benchmark database
    aql_users: int = 10  # users timed with the all-AQL k-hop engine
    work: bool = False  # count the all-AQL k-hop's edge reads instead of timing
    seed: int = 0
    movies: int = 100_000
    people: int = 300_000
    users: int = 10_000
    bench_users: int = 200
    positives: int = 50
    hops: int = 3
    limit: int = 500  # 0 means no limit: every scored movie is returned and sorted
    repeats: int = 1
    json: bool = False


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def positives_batch(
    store: GraphStore, args: Args, rng: np.random.Generator
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


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "queries": len(a),
    }


def _time_queries(store: GraphStore, users: list[str], args: Args, **kw: Any) -> dict[str, Any]:
    limit = args.limit or None
    times: list[float] = []
    sizes: list[int] = []
    for _ in range(args.repeats):
        for user in users:
            t0 = time.perf_counter()
            res = store.khop_scores(user, hops=args.hops, limit=limit, **kw)
            times.append((time.perf_counter() - t0) * 1e3)
            sizes.append(len(res))
    return {"khop_ms": _percentiles(times), "khop_results_median": float(np.median(sizes))}


def _setup(args: Args, store: GraphStore, out: dict[str, Any]) -> list[str]:
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    batch = generate_synthetic(
        movies=args.movies, people=args.people, users=args.users, seed=args.seed
    )
    out["generate_s"] = time.perf_counter() - t0
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
    return bench_users


def run_local(args: Args) -> dict[str, Any]:
    out: dict[str, Any] = {"config": dataclasses.asdict(args)}
    store = LocalGraphStore()
    bench_users = _setup(args, store, out)
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
    loaded.khop_scores(bench_users[0], hops=args.hops, limit=args.limit or None)
    out["first_query_s"] = time.perf_counter() - t0  # builds and caches the hop operator
    out |= _time_queries(loaded, bench_users, args)
    return out


def run_arango(args: Args) -> dict[str, Any]:
    from features.graph.arango import ArangoGraphStore

    url = args.arango_url or os.environ.get("MARQUEE_ARANGO_URL", "")
    if not url:
        raise SystemExit("--store arango needs --arango-url or $MARQUEE_ARANGO_URL")
    password = args.arango_password or os.environ.get("MARQUEE_ARANGO_PASSWORD", "")
    database = f"marquee_bench_{uuid4().hex[:8]}"
    store = ArangoGraphStore.connect(
        url, database, username=args.arango_user, password=password, create=True
    )
    out: dict[str, Any] = {"config": dataclasses.asdict(args), "database": database}
    try:
        bench_users = _setup(args, store, out)
        t0 = time.perf_counter()
        first = store.khop_scores(bench_users[0], hops=args.hops, limit=args.limit or None)
        out["first_query_s"] = time.perf_counter() - t0  # pulls edges, builds the snapshot
        out["mirror"] = _time_queries(store, bench_users, args)
        aql_users = bench_users[: args.aql_users]
        if aql_users:
            out["aql"] = _time_queries(store, aql_users, args, engine="aql")
        agree = 0
        for user in aql_users:
            a = store.khop_scores(user, hops=args.hops, limit=args.limit or None, engine="aql")
            m = store.khop_scores(user, hops=args.hops, limit=args.limit or None)
            agree += [k for k, _ in a] == [k for k, _ in m]
        out["engines_agree"] = f"{agree}/{len(aql_users)} users, same movies in the same order"
        out["first_result_size"] = len(first)
    finally:
        if not args.keep:
            store.drop()
        store.close()
    return out


def aql_edge_reads(args: Args) -> dict[str, Any]:
    """Edges the all-AQL k-hop reads per hop for the bench users, on the generated graph.

    Step 1 of a hop reads every followed edge of every frontier movie, step 2 every edge of
    every shared vertex step 1 reached; the next frontier is every movie step 2 reached (an
    upper bound: exact cancellations are ignored). similar_to edges are read from both ends."""
    rng = np.random.default_rng(args.seed)
    batch = generate_synthetic(
        movies=args.movies, people=args.people, users=args.users, seed=args.seed
    )
    local = LocalGraphStore()
    local.upsert(batch)
    state = local.state
    n = len(state.vertices[VertexKind.MOVIE])
    incidences = []
    for kind in CONTENT_EDGES:
        if kind in DEFAULT_HOP_WEIGHTS:
            et = state.edges[kind]
            b = et.csr if EDGE_SPECS[kind].dst is VertexKind.MOVIE else et.csc
            incidences.append(sparse.csr_matrix(b, dtype=np.float64))
    degrees = [np.asarray(b.sum(axis=1)).ravel() for b in incidences]
    sim = state.edges[EdgeKind.SIMILAR_TO].csr
    sim = sparse.csr_matrix(sim + sim.T, dtype=np.float64)
    per_hop: list[dict[str, float]] = [{} for _ in range(args.hops)]
    users = rng.choice(n, (min(args.bench_users, 20), args.positives))
    for seeds in users:
        frontier = np.zeros(n)
        frontier[seeds] = 1.0
        for h in range(args.hops):
            reached = np.zeros(n)
            step1 = step2 = 0.0
            for b, degree in zip(incidences, degrees, strict=True):
                vias = b @ frontier  # step 1: the frontier's edges, counted per shared vertex
                step1 += float(vias.sum())
                touched = (vias > 0).astype(np.float64)
                step2 += float(degree @ touched)  # step 2: every edge of a touched vertex
                reached += b.T @ touched
            step1 += float((sim @ frontier).sum())
            reached += sim @ frontier
            stats = per_hop[h]
            stats["frontier_movies"] = stats.get("frontier_movies", 0.0) + float(frontier.sum())
            stats["edge_reads"] = stats.get("edge_reads", 0.0) + step1 + step2
            frontier = (reached > 0).astype(np.float64)
    return {
        "config": dataclasses.asdict(args),
        "users": len(users),
        "per_hop_mean": [{k: v / len(users) for k, v in s.items()} for s in per_hop],
        "content_edges": int(sum(b.nnz for b in incidences)),
    }


def main(args: Args) -> None:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    log.info("config: %s", dataclasses.asdict(args))
    if args.work:
        result = aql_edge_reads(args)
    elif args.store == "arango":
        result = run_arango(args)
    else:
        result = run_local(args)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    for key, value in result.items():
        if key != "config":
            print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")


if __name__ == "__main__":
    main(tyro.cli(Args))
