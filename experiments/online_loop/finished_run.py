"""A finished loop run, reopened for measurements away from the live test: its world, graph,
the service's Ranker, registered versions and a fresh crowd of its simulated people.

experiments.online_loop.headroom and .interleaving_credit serve the same visitors through
the service's own ranking with common random numbers, so policies (and test designs) are
compared without the live arms' noise (their people differ, and so does what they saw)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from experiments.online_loop.people import People, Response

Action = npt.NDArray[np.float32]
Act = Callable[[Action], Action]


@dataclass
class FinishedRun:
    """The parts of one run's home (``open_run``)."""

    world: Any
    store: Any
    ranker: Any
    registry: Any
    summary: dict[str, Any]
    population: list[str]

    def actor(self, version: int) -> Act:
        """The registered version's actor, as the service runs it."""
        from agent.actor import actor_fn
        from agent.factory import load_agent

        pv = self.registry.resolve(str(version))
        return actor_fn(load_agent(str(pv.zip_path), algo=pv.algo))

    def people(self) -> People:
        """A fresh crowd: nobody has seen anything yet (boredom, history as the world had)."""
        return People(self.world, self.population)

    def visitors(self, seed: int, start: int, n: int) -> list[str]:
        """``n`` users of a seeded shuffle of the population, from ``start`` on (disjoint
        samples from one seed)."""
        order = np.random.default_rng(seed).permutation(len(self.population))
        return [self.population[i] for i in order[start : start + n]]

    def slate(
        self, user: str, act: Act, k: int, temperature: float, rng: np.random.Generator
    ) -> list[int] | None:
        """The catalogue rows the service would rank for ``user`` (None: a cold start)."""
        ranked = self.ranker.rank(self.store, user, act, k, temperature, rng)
        if ranked is None or ranked.slate is None:
            return None
        return [int(j) for j in ranked.slate.indices]

    def respond(
        self, people: People, user: str, rows: list[int], rng: np.random.Generator
    ) -> Response:
        return people.respond(user, [str(self.ranker.keys[j]) for j in rows], rng)


def open_run(run: Path, cache_size: int = 10_000) -> FinishedRun:
    """The run at ``run`` (the loop's ``--out``: its ``home`` and ``loop.json``)."""
    from agent.registry import PolicyRegistry
    from env.world import SimulationWorld
    from features.bundle import RankingBundle
    from features.graph.factory import open_store
    from features.ranker import Ranker
    from marquee.home import Home

    home = Home(run / "home")
    world = SimulationWorld.load(home.world_dir)
    return FinishedRun(
        world=world,
        store=open_store(home),
        ranker=Ranker(RankingBundle.load(home.world_dir), cache_size=cache_size),
        registry=PolicyRegistry(home.tracking_uri),
        summary=json.loads((run / "loop.json").read_text()),
        population=[str(u) for u in world.users("all")],
    )
