"""How often each off-policy estimator's 95% interval covers the truth, per seed.

Six Plackett-Luce policies (all 30 ordered (logging, target) pairs); each seed logs every
policy afresh and evaluates every other from its logs (agent.evaluation.ope_simulation).
The test suite runs seed 0 of the defaults; this prints the spread over seeds.

    python -m experiments.ab_ope_coverage --seeds 0 1 2 3 --slate-size 5
    python -m experiments.ab_ope_coverage --fit-dm True False   # DM fitted vs fixed
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import tyro

from agent.evaluation.ope_simulation import Context, SimResponse, coverage_study, first_contexts
from agent.evaluation.scored_policies import ScoredPolicy
from env.world import SimulationWorld


@dataclass
class Args:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    slate_size: int = 5
    temperature: float = 1.0
    n_logged: int = 2000
    bootstrap: int = 400
    dm_noise: float = 0.3
    fit_dm: list[bool] = field(default_factory=lambda: [False])
    """DM logit fitted to the logged picks (True) and/or its fixed defaults (False)."""


def policies(t: float) -> list[ScoredPolicy]:
    return [
        ScoredPolicy("popularity", {"popularity": 1.0}, t),
        ScoredPolicy("mf", {"mf": 1.0}, t),
        ScoredPolicy("utility", {"utility": 1.0}, t),
        ScoredPolicy("popularity+mf", {"popularity": 0.5, "mf": 0.5}, t),
        ScoredPolicy("graph", {"graph": 1.0}, t),
        ScoredPolicy("popularity+utility", {"popularity": 0.5, "utility": 0.5}, t),
    ]


def main(args: Args) -> list[dict[str, object]]:
    world = SimulationWorld.from_movielens()
    contexts, response = first_contexts(world, slate_size=args.slate_size, dm_noise=args.dm_noise)
    pols = policies(args.temperature)
    pairs = [(a, b) for a in range(len(pols)) for b in range(len(pols)) if a != b]
    rows = []
    for seed in args.seeds:
        for fit_dm in args.fit_dm:
            rows.append(_row(args, pols, pairs, contexts, response, seed, fit_dm))
    return rows


def _row(
    args: Args,
    pols: list[ScoredPolicy],
    pairs: list[tuple[int, int]],
    contexts: list[Context],
    response: SimResponse,
    seed: int,
    fit_dm: bool,
) -> dict[str, object]:
    """One study (all pairs, all estimators) at ``seed``: pairs covered per estimator."""
    results = coverage_study(
        pols,
        pairs,
        contexts,
        response,
        k=args.slate_size,
        n_logged=args.n_logged,
        bootstrap=args.bootstrap,
        seed=seed,
        fit_dm=fit_dm,
    )
    names = list(results[0].estimates)
    row: dict[str, object] = {"seed": seed, "fit_dm": fit_dm, "pairs": len(results)}
    row.update({n: sum(r.covered(n) for r in results) for n in names})
    row["min_ess"] = round(min(r.estimates["ips"].ess for r in results), 1)
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main(tyro.cli(Args))
