"""Benchmark of feedback writes to the embedded graph: what one rating's upsert costs, and
what the next k-hop query costs right after it (the store's derived matrices are kept over
user-only writes: features.graph.local_state).

Works on a copy of a home's graph (the copy is written to, the home is not): each of
``writes`` rounds upserts one RATED edge (a feedback write) and then times ``khop_scores`` for
another user, as a service answering k-hop queries between feedback deliveries would.

Usage::

    .venv/bin/python -m experiments.bench.graph_writes --home H [--writes 10] [--json]
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tyro

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from marquee.home import Home


@dataclass
class Args:
    home: Path
    """A home with an embedded graph (e.g. from ``marquee ingest synthetic --movies 100000``)."""
    writes: int = 10
    hops: int = 3
    limit: int = 500
    json: bool = False


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}


def run(args: Args) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="graph-writes-") as tmp:
        copy = Path(tmp) / "graph"
        shutil.copytree(Home(args.home).graph_dir, copy)
        store = LocalGraphStore.open(copy)
        users = store.vertex_frame(VertexKind.USER)["key"].astype(str).tolist()
        movies = store.vertex_frame(VertexKind.MOVIE)["key"].astype(str).tolist()
        if len(users) < 2 * args.writes + 2 or len(movies) < args.writes:
            raise SystemExit("the graph holds too few users or movies for --writes")
        store.khop_scores(users[-1], hops=args.hops, limit=args.limit)  # build what it derives
        upserts, khops = [], []
        for i in range(args.writes):
            batch = GraphBatch()
            row = {"src": users[i], "dst": movies[i], "timestamp": 2_000_000_000 + i, "rating": 4.0}
            batch.add_edges(EdgeKind.RATED, pd.DataFrame([row]))
            t0 = time.perf_counter()
            store.upsert(batch)
            upserts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.khop_scores(users[args.writes + i], hops=args.hops, limit=args.limit)
            khops.append(time.perf_counter() - t0)
        store.close()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "args": {k: str(v) for k, v in dataclasses.asdict(args).items()},
        "upsert_ms": _ms(upserts),
        "khop_after_write_ms": _ms(khops),
        "load_average": load,
    }


def main(args: Args) -> None:
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"upsert {result['upsert_ms']} ms; k-hop right after {result['khop_after_write_ms']} ms"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
