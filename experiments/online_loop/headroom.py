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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from experiments.online_loop.finished_run import Act, Action, FinishedRun, open_run

log = logging.getLogger(__name__)


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


def served(run: FinishedRun, visitors: list[str], act: Act, args: Args) -> float:
    """Mean reward per slate of ``act`` over ``visitors`` (a fresh crowd, one visit each),
    with common random numbers per visitor."""
    people = run.people()
    rewards = []
    for i, user in enumerate(visitors):
        rng = np.random.default_rng([args.seed, i])
        rows = run.slate(user, act, args.k, args.temperature, rng)
        if rows is not None:
            rewards.append(run.respond(people, user, rows, rng).reward)
    return float(np.mean(rewards)) if rewards else float("nan")


def _constant(action: Action) -> Act:
    return lambda _obs: action


def measure(args: Args) -> dict[str, Any]:
    """The table the module doc describes, as a dict."""
    run = open_run(args.run, cache_size=args.visitors * 2)
    search = run.visitors(args.seed, 0, args.search_visitors)
    final = run.visitors(args.seed, args.search_visitors, args.visitors)
    dim = run.ranker.action_size
    rng = np.random.default_rng(args.seed)
    candidates: list[Action] = [np.zeros(dim, dtype=np.float32)]
    for j in range(dim):
        for sign in (1.0, -1.0):
            unit = np.zeros(dim, dtype=np.float32)
            unit[j] = sign
            candidates.append(unit)
    candidates += [rng.uniform(-1, 1, dim).astype(np.float32) for _ in range(args.search)]
    scores = [served(run, search, _constant(a), args) for a in candidates]
    at = int(np.nanargmax(scores))
    best, best_score = candidates[at], scores[at]
    step = 0.5
    for _ in range(args.refine):
        for _ in range(16):
            trial = np.clip(best + rng.normal(0.0, step, dim), -1.0, 1.0).astype(np.float32)
            score = served(run, search, _constant(trial), args)
            if score > best_score:
                best, best_score = trial, score
        step /= 2
    log.info("best constant action on the search sample: %s (%.4f)", best.round(2), best_score)

    summary = run.summary
    promoted = {
        int(d["challenger_version"]) for d in summary["decisions"] if d["action"] == "promote"
    }
    first = int(summary.get("champion_version", 1))
    versions = [first, *sorted({*promoted, *args.versions} - {first})]
    table: dict[str, float] = {f"v{v}": served(run, final, run.actor(v), args) for v in versions}
    table["zero action"] = served(run, final, _constant(candidates[0]), args)
    table["best constant action"] = served(run, final, _constant(best), args)
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
