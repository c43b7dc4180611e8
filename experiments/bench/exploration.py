"""How the serving temperature trades exploration against the deterministic slate.

For a sample of a home's users: the champion's action and candidates as the service computes
them; then, per temperature, ``slates`` Plackett-Luce samples of k movies against the
deterministic top k: mean overlap (shared movies / k), how often the deterministic first movie
stays first, the logged propensities (minimum, 1st percentile, median) and distinct movies shown
per user. This is how ``MARQUEE_TEMPERATURE``'s default (serving/settings.py) was chosen.

    marquee --home H ingest movielens && marquee --home H train --alias champion
    .venv/bin/python -m experiments.bench.exploration --home H [--json]
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tyro

from features.graph.factory import opened_store
from features.ranking import rank
from marquee.home import Home
from serving.ab import Arm
from serving.policy_recommender import PolicyRecommender
from serving.policy_source import PolicyPool
from serving.settings import Settings

log = logging.getLogger(__name__)

Optional = npt.NDArray[np.float64] | None
Row = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], Optional, Optional]


@dataclass
class Args:
    """Exploration benchmark (every field is a flag)."""

    home: Path
    users: int = 200
    slates: int = 20
    k: int = 10
    temperatures: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.03, 0.05, 0.1, 0.2])
    seed: int = 0
    json: bool = False


def sample_rows(rec: PolicyRecommender, store: object, args: Args) -> list[Row]:
    """(action, candidates) for up to ``args.users`` random users with more than k candidates."""
    ranker = rec.ranker
    rng = np.random.default_rng(args.seed)
    users = [str(u) for u in ranker.bundle.catalog.users]
    picks = rng.choice(len(users), size=min(args.users, len(users)), replace=False)
    rows: list[Row] = []
    for i in picks.tolist():
        prepared = ranker.prepare(store, users[i])  # type: ignore[arg-type]
        if prepared is None or prepared.candidates.shape[0] <= args.k:
            continue
        action = rec.act(prepared.state) * prepared.residual  # the share this user gets
        rows.append((action, prepared.candidates, prepared.base, prepared.extras))
    return rows


def measure(
    rows: list[Row], vectors: npt.NDArray[np.float32], temperature: float, args: Args
) -> dict[str, float]:
    """Sampled slates at ``temperature`` against the deterministic ones, over every user."""
    rng = np.random.default_rng(args.seed)
    overlap, first, props, distinct = [], [], [], []
    for action, candidates, base, extras in rows:
        det = rank(action, candidates, vectors, args.k, 0.0, base=base, extras=extras).indices
        shown: set[int] = set()
        for _ in range(args.slates):
            slate = rank(action, candidates, vectors, args.k, temperature, rng, base, extras)
            overlap.append(len(set(det.tolist()) & set(slate.indices.tolist())) / args.k)
            first.append(float(slate.indices[0] == det[0]))
            props.extend(slate.propensities.tolist())
            shown |= set(slate.indices.tolist())
        distinct.append(len(shown))
    p = np.asarray(props)
    return {
        "temperature": temperature,
        "overlap": float(np.mean(overlap)),
        "first_same": float(np.mean(first)),
        "min_propensity": float(p.min()),
        "p1_propensity": float(np.percentile(p, 1)),
        "median_propensity": float(np.median(p)),
        "distinct_per_user": float(np.median(distinct)),
    }


def main(args: Args) -> None:
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    log.info("config: %s", asdict(args))
    settings = Settings(home=args.home)
    pool = PolicyPool(settings)
    with opened_store(Home(args.home)) as store:
        served = pool(Arm(name="bench", policy="champion", share=1.0), store)
        rec = getattr(served, "current", served)
        if not isinstance(rec, PolicyRecommender):
            raise SystemExit(f"{args.home}: no champion policy is served; train one first")
        rows = sample_rows(rec, store, args)
        table = [measure(rows, rec.ranker.vectors, t, args) for t in args.temperatures]
    pool.close()
    if args.json:
        print(json.dumps({"config": {**asdict(args), "home": str(args.home)}, "rows": table}))
        return
    print(f"{rec.policy_version}: {len(rows)} users, {args.slates} slates of {args.k} each")
    print("T       overlap  first=det  min prop  p1 prop   median prop  distinct/user")
    for r in table:
        print(
            f"{r['temperature']:<7} {r['overlap']:.3f}    {r['first_same']:.3f}      "
            f"{r['min_propensity']:.1e}   {r['p1_propensity']:.1e}   "
            f"{r['median_propensity']:.3f}        {r['distinct_per_user']:.0f}"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
