"""Training throughput: env steps per second of `agent.training.train` on ml-latest-small.

Runs the same short training once per torch thread count (and, with --sb3-defaults, once with
SB3's own DDPG defaults: train_freq 1, batch 256, one env) so the ratios come from one run on
the same machine state. Each row gives two rates: ``steps_per_s`` over the whole call (env
and agent construction, MLflow, the final evaluation: a fixed few seconds that weigh on short
runs) and ``loop_steps_per_s`` over SB3's learning loop alone, what a long training runs at.

    .venv/bin/python -m experiments.bench.train_speed [--steps 10000] [--json]
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tyro

from agent.config import AgentConfig
from agent.training import TrainConfig, train
from env.world import SimulationWorld
from marquee.home import Home


@dataclass
class Args:
    """Training throughput benchmark."""

    steps: int = 10_000
    threads: list[int] = field(default_factory=lambda: [1, 2])
    sb3_defaults: bool = True
    seed: int = 0
    json: bool = False


def run(world: SimulationWorld, agent: AgentConfig, steps: int, n_envs: int) -> dict[str, float]:
    """One training; its whole-call and learning-loop rates."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            agent=agent,
            timesteps=steps,
            n_envs=n_envs,
            eval_every=10**9,
            eval_episodes=1,
            checkpoint_every=10**9,
            register=False,
        )
        result = train(Home(Path(tmp)), world, cfg)
    return {
        "steps_per_s": result.timesteps / result.seconds,
        "loop_steps_per_s": result.learned_steps / result.learn_seconds,
    }


def main(args: Args) -> dict[str, object]:
    logging.basicConfig(level=logging.WARNING)
    world = SimulationWorld.from_movielens(seed=args.seed)
    rows: list[dict[str, object]] = []
    for n in args.threads:
        rates = run(world, AgentConfig(seed=args.seed, torch_threads=n), args.steps, 4)
        rows.append({"config": f"marquee defaults, torch threads {n}", **rates})
    if args.sb3_defaults:
        sb3 = AgentConfig(
            seed=args.seed,
            train_freq=1,
            batch_size=256,
            n_steps=1,
            learning_starts=100,
            net_arch=[400, 300],
            torch_threads=2,
        )
        rows.append(
            {
                "config": "SB3 DDPG defaults (1 env, train_freq 1, batch 256, 400-300)",
                **run(world, sb3, args.steps, 1),
            }
        )
    out: dict[str, object] = {"args": asdict(args), "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in rows:
            print(
                f"{r['steps_per_s']:8.0f} steps/s whole call, "
                f"{r['loop_steps_per_s']:6.0f} in the loop  {r['config']}"
            )
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
