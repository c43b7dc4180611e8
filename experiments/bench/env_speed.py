"""Environment speed: steps per second under a random policy on ml-latest-small, one core.

Builds the world from the bundled MovieLens sample (or loads ``--world FOLDER``), then times
``--steps`` steps of the raw MovieRecEnv and of ``gymnasium.make`` (with its wrappers).

    .venv/bin/python -m experiments.bench.env_speed [--steps 20000] [--world DIR] [--json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # single core, before numpy loads its BLAS

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402

import env  # noqa: E402
from env.movie_rec_env import MovieRecEnv  # noqa: E402
from env.world import SimulationWorld  # noqa: E402


def run(e: gym.Env, steps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    shape = e.action_space.shape or ()
    actions = rng.uniform(-1, 1, (steps, *shape)).astype(np.float32)
    e.reset(seed=seed)
    episodes, total = 0, 0.0
    t = time.perf_counter()
    for a in actions:
        _, r, term, trunc, _ = e.step(a)
        total += float(r)
        if term or trunc:
            episodes += 1
            e.reset()
    secs = time.perf_counter() - t
    return {
        "steps_per_s": steps / secs,
        "seconds": secs,
        "episodes": episodes,
        "mean_reward": total / steps,
    }


@dataclass
class Args:
    """Environment speed under a random policy."""

    steps: int = 20000
    seed: int = 0
    world: Path | None = None  # a saved world folder (default: build from the bundled sample)
    json: bool = False


def main(args: Args) -> dict[str, object]:

    t = time.perf_counter()
    world = SimulationWorld.load(args.world) if args.world else SimulationWorld.from_movielens()
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        folder = world.save(Path(tmp) / "world")
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        SimulationWorld.load(folder)
        load_s = time.perf_counter() - t
    t = time.perf_counter()
    made = gym.make(env.ENV_ID, world=world)
    make_s = time.perf_counter() - t
    result: dict[str, object] = {
        "world_build_s" if not args.world else "world_load_s": build_s,
        "world_save_s": save_s,
        "world_load_s": load_s,
        "gym_make_s": make_s,
        "raw_env": run(MovieRecEnv(world), args.steps, args.seed),
        "gym_make_env": run(made, args.steps, args.seed),
        "steps": args.steps,
        "observation_size": int(made.observation_space.shape[0]),  # type: ignore[index]
        "movies": world.catalog.n_movies,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            if isinstance(v, dict):
                print(f"{k:<16} " + ", ".join(f"{kk} {vv:.4g}" for kk, vv in v.items()))
            else:
                print(f"{k:<16} {v:.4g}" if isinstance(v, float) else f"{k:<16} {v}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
