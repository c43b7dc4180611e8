"""The feedback-write benchmark on a tiny home: it reports both timings and leaves the home's
graph as it was (it writes to a copy)."""

from __future__ import annotations

from pathlib import Path

from experiments.bench import graph_writes
from features.graph.local import LocalGraphStore
from features.importers.synthetic import generate_synthetic
from marquee.home import Home


def test_graph_writes_bench_reports_and_leaves_the_home_alone(tmp_path: Path) -> None:
    store = LocalGraphStore(Home(tmp_path).graph_dir)
    store.upsert(generate_synthetic(movies=300, people=400, users=40, seed=2))
    counts = store.counts()
    result = graph_writes.run(graph_writes.Args(home=tmp_path, writes=4, hops=2, limit=50))
    assert set(result["upsert_ms"]) == {"p50", "p95", "p99"}  # type: ignore[call-overload]
    assert result["khop_after_write_ms"]["p50"] > 0  # type: ignore[index]
    assert LocalGraphStore.open(Home(tmp_path).graph_dir).counts() == counts
