"""Where a service worker's memory goes: RSS/PSS/private after each step of what a worker does
(imports, graph, ranking bundle, Ranker, policy, first requests), and which arrays it holds.

Loads as serving.policy_source.PolicyPool does (the same Ranker settings), in this process:

    python experiments/bench/worker_memory.py --home H [--requests 200] [--tracemalloc] [--json]

``arrays`` lists every numpy array reachable from the Ranker (bundle, state builder,
candidates, history reader, slate features), largest first, with its bytes and whether it is
memory-mapped from a file (pages shared with other processes through the page cache) or owned
(private). ``--tracemalloc`` adds the allocation sites that hold the most after the load
(slower). Runs with whatever code PYTHONPATH points at, so one copy of this script measures
two versions.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import mmap
import os
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tyro

log = logging.getLogger(__name__)


@dataclass
class Args:
    """Settings (every one is a command-line flag)."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    requests: int = 200  # first requests (distinct users) after the load
    k: int = 10
    top_arrays: int = 25
    tracemalloc: bool = False
    seed: int = 0
    json: bool = False


def memory(pid: int | str = "self") -> dict[str, float]:
    """RSS, PSS and private (clean + dirty) MB from /proc/PID/smaps_rollup."""
    raw: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            raw[parts[0][:-1]] = int(parts[1])
    return {
        "rss_mb": round(raw.get("Rss", 0) / 1024, 1),
        "pss_mb": round(raw.get("Pss", 0) / 1024, 1),
        "private_mb": round((raw.get("Private_Clean", 0) + raw.get("Private_Dirty", 0)) / 1024, 1),
        "anonymous_mb": round(raw.get("Anonymous", 0) / 1024, 1),
        "shared_mb": round((raw.get("Shared_Clean", 0) + raw.get("Shared_Dirty", 0)) / 1024, 1),
    }


def is_mapped(a: np.ndarray) -> bool:
    """Whether the array's memory comes from a file mapping (np.memmap or an mmap buffer)."""
    base: Any = a
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


def arrays_of(root: Any, name: str, limit_depth: int = 6) -> list[tuple[str, int, bool]]:
    """(path, bytes, mapped) of every numpy array reachable from ``root`` through attributes,
    dataclass fields, mappings, sequences, DataFrames and sparse matrices (each array once)."""
    import pandas as pd
    import scipy.sparse as sp

    seen: set[int] = set()
    out: list[tuple[str, int, bool]] = []

    def visit(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > limit_depth:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append((path, int(obj.nbytes), is_mapped(obj)))
            if obj.dtype == object and obj.size:
                strs = sum(len(str(x)) + 49 for x in obj.ravel()[:1000]) / min(obj.size, 1000)
                out.append((path + "[python objects, est.]", int(strs * obj.size), False))
            return
        if isinstance(obj, pd.DataFrame):
            for c in obj.columns:
                col = obj[c].to_numpy()
                visit(col, f"{path}[{c!r}]", depth + 1)
            return
        if sp.issparse(obj):
            for part in ("data", "indices", "indptr"):
                visit(getattr(obj, part, None), f"{path}.{part}", depth + 1)
            return
        if isinstance(obj, (str, bytes, int, float, bool, type(None))) or (
            callable(obj) and not (hasattr(obj, "__dict__") or dataclasses.is_dataclass(obj))
        ):
            return
        if isinstance(obj, dict):
            for k, v in list(obj.items())[:64]:
                visit(v, f"{path}[{k!r}]", depth + 1)
            if len(obj) > 64 and all(isinstance(k, str) for k in list(obj)[:8]):
                out.append((path + "[dict, est.]", len(obj) * (100 + 60), False))
            return
        if isinstance(obj, (list, tuple)):
            if len(obj) > 64 and all(isinstance(x, str) for x in obj[:8]):
                out.append((path + "[list of str, est.]", len(obj) * (8 + 60), False))
                return
            for i, v in enumerate(obj[:64]):
                visit(v, f"{path}[{i}]", depth + 1)
            return
        if isinstance(obj, pd.Index):
            out.append((path + "[pandas index, est.]", int(obj.memory_usage(deep=True)), False))
            return
        attrs = dict(getattr(obj, "__dict__", {}))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
        for k, v in attrs.items():
            visit(v, f"{path}.{k}", depth + 1)

    visit(root, name, 0)
    return out


def _allocator() -> Any:
    """serving.allocator where the measured code has it (None for code from before it)."""
    try:
        import serving.allocator as allocator
    except ImportError:
        return None
    return allocator


def _mappings() -> dict[str, Any]:
    """Resident memory per kind of mapping and the largest mappings (experiments.bench.smaps)."""
    from experiments.bench.smaps import top_mappings

    return top_mappings("self", 30)


def main(args: Args) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    home = args.home.expanduser().resolve()
    steps: dict[str, Any] = {"start": memory()}
    t0 = time.perf_counter()
    allocator = _allocator()
    if allocator is not None:
        allocator.tune()  # as a served worker does first (serving.allocator)
    import agent.actor  # noqa: F401  (torch, as a worker imports it)
    import serving.app  # noqa: F401
    from experiments.bench.scale import bench_users, load_average, percentiles
    from features.bundle import RankingBundle
    from features.graph.factory import open_store
    from marquee.home import Home
    from serving.ab import Arm
    from serving.policy_source import PolicyPool, ranker_for
    from serving.settings import Settings

    steps["imports"] = memory()
    store = open_store(Home(home))
    steps["graph"] = memory()
    users = bench_users(store, args.requests + 1, args.seed + 1)
    steps["graph_after_picking_users"] = memory()
    settings = Settings(home=home)
    t1 = time.perf_counter()
    bundle = RankingBundle.load(Home(home).world_dir)
    bundle_s = time.perf_counter() - t1
    steps["bundle"] = {**memory(), "seconds": round(bundle_s, 2)}
    t1 = time.perf_counter()
    ranker = ranker_for(bundle, settings)
    steps["ranker"] = {**memory(), "seconds": round(time.perf_counter() - t1, 2)}
    snaps: dict[str, Any] = {}
    if args.tracemalloc:  # from here on: what the policy and the requests allocate
        tracemalloc.start(1)
        snaps["load"] = tracemalloc.take_snapshot()
    pool = PolicyPool(settings, ranker=ranker)
    rec = pool(Arm(name="bench", policy="champion", share=1.0), store)
    if rec.policy_version == "popularity":
        raise SystemExit(f"no champion policy is served ({pool.status()})")
    if allocator is not None:  # as the app does once built
        allocator.release()
        allocator.drop_mapped(home)
    steps["policy"] = memory()
    if args.tracemalloc:
        snaps["policy"] = tracemalloc.take_snapshot()
    times = []
    for u in users:
        c = time.perf_counter()
        rec.recommend(u, args.k)
        times.append((time.perf_counter() - c) * 1e3)
    gc.collect()
    steps[f"after_{len(users)}_first_requests"] = memory()
    mappings = _mappings()
    if args.tracemalloc:
        snaps["requests"] = tracemalloc.take_snapshot()
    held = sorted(arrays_of(ranker, "ranker"), key=lambda r: -r[1])
    owned = sum(b for _, b, m in held if not m)
    mapped_total = sum(b for _, b, m in held if m)
    result: dict[str, Any] = {
        "home": str(home),
        "steps": steps,
        "first_request_ms_excluding_first": percentiles(times[1:]),
        "first_call_ms": round(times[0], 1),
        "arrays_owned_mb": round(owned / 2**20, 1),
        "arrays_mapped_mb": round(mapped_total / 2**20, 1),
        "arrays": [
            {"path": p, "mb": round(b / 2**20, 1), "mapped": m}
            for p, b, m in held[: args.top_arrays]
        ],
        "mappings_after_requests": mappings,
        "total_s": round(time.perf_counter() - t0, 1),
        "load_average": load_average(),
    }
    previous = None
    for stage, snap in snaps.items():
        stats = (
            snap.statistics("lineno") if previous is None else snap.compare_to(previous, "lineno")
        )[:12]
        result[f"tracemalloc_{stage}"] = [
            {"where": str(s.traceback[0]), "mb": round(getattr(s, "size_diff", s.size) / 2**20, 1)}
            for s in stats
        ]
        result[f"tracemalloc_{stage}_total_mb"] = round(
            sum(s.size for s in snap.statistics("filename")) / 2**20, 1
        )
        previous = snap
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            if key == "arrays" or (key.startswith("tracemalloc_") and isinstance(value, list)):
                print(f"{key}:")
                for row in value:
                    print("   ", json.dumps(row))
            elif key == "steps":
                for s, m in value.items():
                    print(f"step {s}: {json.dumps(m)}")
            else:
                print(f"{key}: {json.dumps(value)}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
