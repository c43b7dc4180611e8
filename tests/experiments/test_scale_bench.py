"""The full-scale benchmark script on a tiny home: every part it runs reports its figures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.bench import scale
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind
from features.importers.synthetic import generate_synthetic


def test_scale_bench_reports_load_save_and_khop(tmp_path: Path) -> None:
    store = LocalGraphStore(tmp_path / "graph")
    store.upsert(generate_synthetic(movies=300, people=400, users=40, seed=2))
    args = scale.Args(
        home=tmp_path,
        load_repeats=2,
        bench_users=10,
        hub_caps=(5,),
        recommend=False,
        env_steps=0,
        json=True,
    )
    result = scale.main(args)
    counts = store.counts()
    assert result["movies"] == 300
    assert result["edges"] == sum(counts[k.value] for k in EdgeKind)
    load = result["load"]
    assert load["load_s"]["n"] == 2 and load["load_s"]["p50"] > 0
    assert load["memory_after_load"]["rss_mb"] > 0 and len(load["load_average"]) == 3
    khop = result["khop"]
    assert khop["save"]["wall_s"] >= 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("scale-save-")]
    for part in ("exact", "hub_cap_5"):
        assert khop[part]["wall_ms"]["n"] == 10
        assert khop[part]["wall_ms"]["p50"] <= khop[part]["wall_ms"]["p99"]
        assert khop[part]["memory_after"]["pss_mb"] > 0


def test_percentiles_and_memory() -> None:
    p = scale.percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert p["p50"] == 3.0 and p["p95"] > p["p50"] and p["max"] == 100.0 and p["n"] == 5
    assert scale.percentiles([]) == {"n": 0}
    mem = scale.memory()
    assert mem["rss_mb"] >= mem["pss_mb"] > 0


def test_worker_pids_finds_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for _ in range(50):
            if child.pid in scale.worker_pids(os.getpid()):
                break
            time.sleep(0.1)
        assert child.pid in scale.worker_pids(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_share_probe_reports_each_process_mapped_graph(tmp_path: Path) -> None:
    LocalGraphStore(tmp_path / "graph").upsert(
        generate_synthetic(movies=200, people=300, users=30, seed=1)
    )
    args = scale.Args(home=tmp_path, bench_users=5)
    out = scale.run_share(args, 2)
    assert out["processes"] == 2 and len(out["per_process"]) == 2
    for m in out["per_process"].values():
        assert 0 <= m["graph_pss_mb"] <= m["graph_rss_mb"] and m["rss_mb"] > 0
