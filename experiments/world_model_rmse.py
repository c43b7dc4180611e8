"""How well the simulator's world model predicts held-out real ratings.

Fits the global mean, the user + item bias model and biased MF (env.world_model) on a random
90% of the ratings and prints the RMSE of each on the other 10%.

    .venv/bin/python -m experiments.world_model_rmse [--data FOLDER] [--json]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from env.world import BUNDLED_MOVIELENS
from env.world_model import WorldModel, fit_biases, rmse
from features.catalog import Catalog
from features.importers.movielens import load_movielens


@dataclass
class Args:
    """World-model RMSE on held-out ratings."""

    data: Path = BUNDLED_MOVIELENS  # MovieLens folder
    test_fraction: float = 0.1
    seed: int = 0
    factors: int = 16
    reg: float = 0.15
    iterations: int = 12
    json: bool = False  # print JSON instead of a table


def main(args: Args) -> dict[str, object]:

    cat = Catalog.from_batch(load_movielens(args.data))
    r = cat.ratings
    users, items, y = r["user"].to_numpy(), r["movie"].to_numpy(), r["rating"].to_numpy()
    test = np.random.default_rng(args.seed).random(len(r)) < args.test_fraction
    rows: list[dict[str, object]] = []

    t = time.perf_counter()
    mu = float(y[~test].mean())
    rows.append(
        {
            "model": "global mean",
            "rmse": rmse(np.full(test.sum(), mu), y[test]),
            "fit_s": time.perf_counter() - t,
        }
    )

    def evaluate(name: str, fit: object) -> None:
        t0 = time.perf_counter()
        m: WorldModel = fit()  # type: ignore[operator]
        secs = time.perf_counter() - t0
        u = np.searchsorted(m.user_keys, users[test]).clip(0, m.n_users - 1)
        known = m.user_keys[u] == users[test]
        pred = np.where(known, m.predict(u, items[test]), m.mu)
        rows.append({"model": name, "rmse": rmse(pred, y[test]), "fit_s": secs})

    evaluate(
        "user + item bias",
        lambda: fit_biases(users[~test], items[~test], y[~test], cat.n_movies, reg=args.reg),
    )
    evaluate(
        f"biased MF (ALS, k={args.factors})",
        lambda: WorldModel.fit(
            users[~test],
            items[~test],
            y[~test],
            cat.n_movies,
            factors=args.factors,
            reg=args.reg,
            iterations=args.iterations,
            seed=args.seed,
        ),
    )
    result: dict[str, object] = {
        "data": str(args.data),
        "ratings": len(r),
        "held_out": int(test.sum()),
        "seed": args.seed,
        "models": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(r)} ratings, {int(test.sum())} held out (seed {args.seed})")
        print(f"{'model':<28} {'RMSE':>7} {'fit s':>7}")
        for row in rows:
            print(f"{row['model']:<28} {row['rmse']:>7.4f} {row['fit_s']:>7.2f}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
