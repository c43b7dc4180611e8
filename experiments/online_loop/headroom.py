"""How much better could anything serve in a finished loop run's world than its weak champion?

The loop's must-show asks the served return to rise by 20% from a weak champion. Whether that
is possible depends on the world: this measures, for one run's home (``--run``: the loop's
``--out``), the mean return per slate the service's own ranking (features.ranker.Ranker, the
loop's temperature and slate size) earns among the loop's simulated people
(experiments.online_loop.people.People) when it ranks with

- the registered versions the run promoted, and v1 (the champion it started from);
- the zero action (the retriever alone) and constant actions: the best of ``--search``
  random ones and of the unit actions, found on a first sample of visitors and then measured,
  with every policy, on a second, larger one.

Every policy meets the same visitors in the same order with the same random numbers (one
visit each, from the run's final graph: the people's answers do not change what the ranker
reads, so a second visit would show the same films). So the figures compare policies; they are
first-visit returns, not the loop's live figures. The best constant action is a floor on the
headroom (a state-dependent policy may do better), not a ceiling.

    python -m experiments.online_loop.headroom --run OUT [--visitors 3000] [--json]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tyro

from experiments.online_loop.people import People

log = logging.getLogger(__name__)

Action = npt.NDArray[np.float32]


@dataclass
class Args:
    """One finished run's home and the samples to measure on."""

    run: Path
    """The loop run's ``--out`` folder (its ``home`` and ``loop.json``)."""
    visitors: int = 3000
    """Visitors of the final measurement (each policy serves each once)."""
    search_visitors: int = 800
    """Visitors the constant actions are searched on (disjoint from the final sample)."""
    search: int = 40
    """Random constant actions tried, besides zero and the unit actions."""
    refine: int = 3
    """Rounds of 16 Gaussian steps around the best constant action so far (sd 0.5, halved
    each round)."""
    versions: tuple[int, ...] = ()
    """Registered versions to measure besides the champion and the promoted ones (e.g. the
    candidates a run judged and kept out)."""
    k: int = 10
    temperature: float = 0.5
    seed: int = 0
    json: bool = False


def _serve(
    ranker: Any,
    store: Any,
    people: People,
    visitors: list[str],
    act: Callable[[Action], Action],
    args: Args,
) -> float:
    """Mean reward per slate of ``act`` over ``visitors``, common random numbers per visitor."""
    rewards = []
    for i, user in enumerate(visitors):
        rng = np.random.default_rng([args.seed, i])
        ranked = ranker.rank(store, user, act, args.k, args.temperature, rng)
        if ranked is None or ranked.slate is None:
            continue
        slate = [str(ranker.keys[j]) for j in ranked.slate.indices]
        rewards.append(people.respond(user, slate, rng).reward)
    return float(np.mean(rewards)) if rewards else float("nan")


def _constant(action: Action) -> Callable[[Action], Action]:
    return lambda _obs: action


def measure(args: Args) -> dict[str, Any]:
    """The table the module doc describes, as a dict."""
    from agent.actor import actor_fn
    from agent.factory import load_agent
    from agent.registry import PolicyRegistry
    from env.world import SimulationWorld
    from features.bundle import RankingBundle
    from features.graph.factory import open_store
    from features.ranker import Ranker
    from marquee.home import Home

    home = Home(args.run / "home")
    summary = json.loads((args.run / "loop.json").read_text())
    world = SimulationWorld.load(home.world_dir)
    store = open_store(home)
    ranker = Ranker(RankingBundle.load(home.world_dir), cache_size=args.visitors * 2)
    registry = PolicyRegistry(home.tracking_uri)
    population = [str(u) for u in world.users("all")]
    order = np.random.default_rng(args.seed).permutation(len(population))
    search = [population[i] for i in order[: args.search_visitors]]
    final = [
        population[i] for i in order[args.search_visitors : args.search_visitors + args.visitors]
    ]

    def served(act: Callable[[Action], Action], users: list[str]) -> float:
        return _serve(ranker, store, People(world, population), users, act, args)

    dim = ranker.action_size
    rng = np.random.default_rng(args.seed)
    candidates: list[Action] = [np.zeros(dim, dtype=np.float32)]
    for j in range(dim):
        for sign in (1.0, -1.0):
            unit = np.zeros(dim, dtype=np.float32)
            unit[j] = sign
            candidates.append(unit)
    candidates += [rng.uniform(-1, 1, dim).astype(np.float32) for _ in range(args.search)]
    scores = [served(_constant(a), search) for a in candidates]
    at = int(np.nanargmax(scores))
    best, best_score = candidates[at], scores[at]
    step = 0.5
    for _ in range(args.refine):
        for _ in range(16):
            trial = np.clip(best + rng.normal(0.0, step, dim), -1.0, 1.0).astype(np.float32)
            score = served(_constant(trial), search)
            if score > best_score:
                best, best_score = trial, score
        step /= 2
    log.info("best constant action on the search sample: %s (%.4f)", best.round(2), best_score)

    promoted = sorted(
        {int(d["challenger_version"]) for d in summary["decisions"] if d["action"] == "promote"}
    )
    first = int(summary.get("champion_version", 1))
    versions = [first, *sorted({*promoted, *args.versions} - {first})]
    table: dict[str, float] = {}
    for v in versions:
        pv = registry.resolve(str(v))
        table[f"v{v}"] = served(actor_fn(load_agent(str(pv.zip_path), algo=pv.algo)), final)
    table["zero action"] = served(_constant(candidates[0]), final)
    table["best constant action"] = served(_constant(best), final)
    base = table[f"v{first}"]
    return {
        "args": {k: str(v) for k, v in asdict(args).items()},
        "visitors": len(final),
        "best_constant_action": [round(float(x), 3) for x in best],
        "return_per_slate": table,
        "over_champion": {k: (v - base) / abs(base) for k, v in table.items()},
    }


def main(args: Args) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = measure(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, value in out["return_per_slate"].items():
        print(f"{name:>22}  {value:.4f}  {100 * out['over_champion'][name]:+.1f}%")


if __name__ == "__main__":
    main(tyro.cli(Args))
