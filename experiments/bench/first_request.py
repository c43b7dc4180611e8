"""What a user's first recommendation serves, and what its parts cost, on a large home, so that
two versions of the code can be shown to serve the same thing:

    python experiments/bench/first_request.py --home H [--users 100] --dump A.json
    python experiments/bench/first_request.py --compare A.json B.json

Each user is ranked as a first request (the Ranker's cache cleared) through the served policy
path, at temperature 0. ``--dump`` writes, per user, the retriever's top (the candidates'
first ``n_retrieved`` rows), every candidate, the ranking's base scores and the served top
``k``; run it once with PYTHONPATH at each version (the same users, in the same order, so the
day caches fill alike) and ``--compare`` the files: identical lists, the base's largest
difference. It also reports the CPU time per request by part (the retriever's scores, its
top, the graph candidates, the state) and, where the retriever has ``reference_scores``
(features.blend), the largest difference between its scores and the reference computation,
and whether their top ``n_retrieved`` unseen rows are the same, user by user.
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
    seed: int = 2
    dump: Path | None = None
    compare: tuple[Path, Path] | None = None
    json: bool = False


def run(args: Args) -> dict[str, Any]:
    import features.candidates as candidates
    import features.state as state
    from experiments.bench.scale import bench_users, load_average
    from features.graph.factory import open_store
    from marquee.home import Home
    from serving.ab import Arm
    from serving.policy_source import PolicyPool
    from serving.settings import Settings

    store = open_store(Home(args.home))
    users = bench_users(store, args.users + 1, args.seed)
    served = PolicyPool(Settings(home=args.home))(
        Arm(name="bench", policy="champion", share=1.0), store
    )
    recommender: Any = getattr(served, "_current", served)
    ranker = recommender.ranker
    gen = ranker.candidates
    retriever = gen.retriever
    timer = CpuTimer()
    timer.wrap(type(retriever), "scores", "retriever_scores", keep_arg=True)
    timer.wrap(candidates.CandidateGenerator, "retrieved", "retrieved_top")
    timer.wrap(candidates.CandidateGenerator, "_graph", "graph_candidates")
    timer.wrap(state.StateBuilder, "build", "state")
    for part, method, label in (
        ("popularity", "scores_on", "retriever_popularity_day"),
        ("als", "raw_scores", "retriever_als_product"),
    ):
        if getattr(retriever, part, None) is not None and hasattr(
            type(getattr(retriever, part)), method
        ):
            timer.wrap(type(getattr(retriever, part)), method, label)
    reference = getattr(retriever, "reference_scores", None)

    def first(user: str) -> tuple[Any, Any, float]:
        ranker._cache.clear()
        c0 = time.process_time()
        ranked = ranker.rank(store, user, recommender.act, args.k)  # temperature 0
        cpu = time.process_time() - c0
        assert ranked is not None and ranked.slate is not None
        return ranked, ranker.prepare(store, user), cpu

    first(users[0])  # what the first call builds
    timer.spent.clear()
    per_user: list[dict[str, Any]] = []
    total = 0.0
    checks: list[tuple[float, bool]] = []
    for user in users[1:]:
        ranked, value, cpu = first(user)
        total += cpu
        top = value.candidates[: gen.n_retrieved]
        per_user.append(
            {
                "user": user,
                "top": top.tolist(),
                "candidates": value.candidates.tolist(),
                "base": None if value.base is None else value.base.tolist(),
                "served": ranked.slate.indices.tolist(),
            }
        )
        history = timer.last.get("retriever_scores")
        if reference is not None and history is not None:
            kept = dict(timer.spent)  # the reference's own parts are not the request's
            want = reference(history)
            timer.spent = kept
            got = candidates.retriever_scores(retriever, history)
            rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))
            same = np.array_equal(
                candidates.top_unseen(want, history.seen, gen.n_retrieved)
                if hasattr(candidates, "top_unseen")
                else top,
                top,
            )
            checks.append((rel, bool(same)))
    n = len(per_user)
    result: dict[str, Any] = {
        "home": str(args.home),
        "users": n,
        "cpu_ms_per_request": {
            "total": round(total / n * 1e3, 1),
            **{k: round(v / n * 1e3, 1) for k, v in timer.spent.items()},
        },
        "load_average": load_average(),
    }
    if checks:
        result["against_reference"] = {
            "max_relative_difference": max(c[0] for c in checks),
            "top_identical_share": float(np.mean([c[1] for c in checks])),
        }
    if args.dump is not None:
        args.dump.write_text(json.dumps({"summary": result, "users": per_user}))
    return result


def compare(a_path: Path, b_path: Path) -> dict[str, Any]:
    """How two dumps differ, user by user (the same users expected, in the same order)."""
    a, b = (json.loads(p.read_text())["users"] for p in (a_path, b_path))
    if [u["user"] for u in a] != [u["user"] for u in b]:
        raise ValueError("the dumps hold different users")
    base_diff = 0.0
    for x, y in zip(a, b, strict=True):
        if x["base"] is not None and y["base"] is not None and x["candidates"] == y["candidates"]:
            base_diff = max(base_diff, float(np.abs(np.subtract(x["base"], y["base"])).max()))
    same = {
        key: sum(x[key] == y[key] for x, y in zip(a, b, strict=True))
        for key in ("top", "candidates", "served")
    }
    return {
        "users": len(a),
        "identical": same,
        "base_max_abs_difference": base_diff,
    }


def main(args: Args) -> dict[str, Any]:
    result = compare(*args.compare) if args.compare is not None else run(args)
    print(json.dumps(result, indent=1) if args.json else result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(tyro.cli(Args))
