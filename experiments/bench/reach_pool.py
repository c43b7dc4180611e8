"""The reach pool's 2-hop candidates (features.graph.reach_pool) against the full computation on
a large home, on the served policy path, with the same users:

    python experiments/bench/reach_pool.py --home H [--users 100] [--json]

For each user (each request a first one: the Ranker's cache cleared) it ranks twice, pooled and
with the pool switched off (every movie scored, three passes over the hop operator), and
reports how close they are (the path that goes first alternates between users, as the second
finds the retriever's day caches warm): the candidate sets' overlap, the deterministic top ``k``
(temperature 0) and the largest difference between the two state vectors. It also reports the
CPU time per request of each part (graph candidates, the retriever's top, the state) on either
path, so that what is left of a first request is in one table. Runs whatever code PYTHONPATH
points at; on graphs below the pool's gate both paths are the same.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from experiments.bench.cpu_timer import CpuTimer

log = logging.getLogger(__name__)


@dataclass
class Args:
    """Settings (every one is a command-line flag)."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("MARQUEE_HOME", ".marquee")))
    users: int = 100
    k: int = 10
    seed: int = 1
    json: bool = False


def main(args: Args) -> dict[str, Any]:
    import features.candidates as candidates
    import features.state as state
    from experiments.bench.scale import bench_users, load_average
    from features.graph import reach_pool as rp
    from features.graph.factory import open_store
    from marquee.home import Home
    from serving.ab import Arm
    from serving.policy_source import PolicyPool
    from serving.settings import Settings

    timer = CpuTimer()
    timer.wrap(candidates.CandidateGenerator, "_graph", "graph_candidates")
    timer.wrap(candidates.CandidateGenerator, "retrieved", "retrieved_top")
    timer.wrap(state.StateBuilder, "build", "state")
    store = open_store(Home(args.home))
    users = bench_users(store, args.users, args.seed)
    served = PolicyPool(Settings(home=args.home))(
        Arm(name="bench", policy="champion", share=1.0), store
    )
    recommender: Any = getattr(served, "_current", served)
    ranker = recommender.ranker
    op = ranker.candidates.catalog.hop
    pool = rp.reach_pool(op)

    def rank(user: str, pooled: bool) -> tuple[list[int], np.ndarray, np.ndarray, float]:
        rp._POOLS[id(op)] = pool if pooled else None
        ranker._cache.clear()  # a first request
        c0 = time.process_time()
        ranked = ranker.rank(store, user, recommender.act, args.k)  # temperature 0
        cpu = time.process_time() - c0
        assert ranked is not None and ranked.slate is not None
        value = ranker.prepare(store, user)
        assert value is not None
        return ranked.slate.indices.tolist(), value.candidates, value.state, cpu

    rank(users[0], True)  # what the first call builds
    spent: dict[str, dict[str, float]] = {"pooled": {}, "full": {}}
    total = {"pooled": 0.0, "full": 0.0}
    rows = []
    for i, user in enumerate(users[1:]):
        out = {}
        # the second ranking of a user finds the retriever's day caches warm: alternate
        order = (("pooled", True), ("full", False))
        for name, pooled in order if i % 2 == 0 else order[::-1]:
            timer.spent.clear()
            out[name] = rank(user, pooled)
            total[name] += out[name][3]
            for label, s in timer.spent.items():
                spent[name][label] = spent[name].get(label, 0.0) + s
        (top_p, cand_p, state_p, _), (top_f, cand_f, state_f, _) = out["pooled"], out["full"]
        rows.append(
            (
                len(set(cand_p.tolist()) & set(cand_f.tolist())) / max(1, cand_f.shape[0]),
                len(set(top_p) & set(top_f)) / max(1, len(top_f)),
                float(top_p == top_f),
                float(np.abs(state_p.astype(np.float64) - state_f).max()),
            )
        )
    rp._POOLS[id(op)] = pool
    a = np.asarray(rows)
    n = a.shape[0]
    result = {
        "home": str(args.home),
        "pool": None if pool is None else int(pool.rows.shape[0]),
        "users": n,
        "candidates_overlap": {"mean": float(a[:, 0].mean()), "min": float(a[:, 0].min())},
        "candidates_identical_share": float((a[:, 0] == 1.0).mean()),
        f"top{args.k}_overlap": {"mean": float(a[:, 1].mean()), "min": float(a[:, 1].min())},
        f"top{args.k}_same_order_share": float(a[:, 2].mean()),
        "state_max_abs_difference": float(a[:, 3].max()),
        "cpu_ms_per_request": {
            name: {
                "total": round(total[name] / n * 1e3, 1),
                **{k: round(v / n * 1e3, 1) for k, v in spent[name].items()},
            }
            for name in spent
        },
        "load_average": load_average(),
    }
    print(json.dumps(result, indent=1) if args.json else result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(tyro.cli(Args))
