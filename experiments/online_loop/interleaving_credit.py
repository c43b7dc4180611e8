"""How sensitive is the autopilot's interleaved test to a better version, credit rule by rule?

For one finished loop run (``--run``) and two of its registered versions, each visitor (one
visit, a fresh crowd, common random numbers) is served three ways through the service's
ranking: version A's slate alone, B's alone (the A/B: the true difference in served return),
and a team-draft interleaving of the two (agent.evaluation.interleaving.team_draft, as the
service's challenger arm does). Each interleaved slate's outcome is credited to the teams by

- ``positive``: the reward of a chosen film when positive (the autopilot's rule before
  2026-12-04: a disliked pick credited no one);
- ``every event``: the reward of all feedback naming a team's film, good or bad; a slate with
  no choice sends the loop's skip, which names the first film (the autopilot's rule now);
- ``choices``: the signed reward of a chosen film, skips crediting no one;
- ``acceptance``: 1 for the team whose film was chosen (classic interleaving).

and the z a paired test of B over A would reach at ``--slates`` interleaved slates (one per
user) is printed beside the A/B's z at as many slates per arm. The A/B difference is what a
promotion should raise; a rule is good when its z is large where that difference is. Beside
each z: the plan (``--min-slates-per-arm``) the autopilot's group-sequential test (``--looks``,
its futility stop) needs for 80% power against a ``--lift`` gain over A, the z scaled from B's
measured gain to that lift (agent.evaluation.sequential.plan_size).

    python -m experiments.online_loop.interleaving_credit --run OUT --a 1 --b 5 [--json]
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from agent.evaluation.interleaving import TEAM_A, TEAM_B, team_draft
from agent.evaluation.sequential import plan_size
from agent.promotion import PromotionRules
from experiments.online_loop.finished_run import open_run

log = logging.getLogger(__name__)

RULES = ("positive", "every event", "choices", "acceptance")


@dataclass
class Args:
    """Which run, which two of its versions, and how many visitors."""

    run: Path
    """The loop run's ``--out`` folder."""
    a: int
    """Version A (the champion's team)."""
    b: int
    """Version B (the challenger's team)."""
    visitors: int = 3000
    slates: int = 2000
    """The test size the z figures are scaled to (the loop's ``--min-slates-per-arm``)."""
    lift: float = 0.2
    """The relative gain over A a plan should find with 80% power."""
    looks: int = 4
    """The autopilot's analyses per test (the loop's ``--looks``)."""
    k: int = 10
    temperature: float = 0.5
    seed: int = 0
    json: bool = False


def _credits(teams: list[int], chosen: int | None, reward: float, nothing: float) -> np.ndarray:
    """(rules x 2) credit of teams A and B for one interleaved slate's outcome."""
    out = np.zeros((len(RULES), 2))
    if chosen is None:
        out[1, teams[0]] = nothing  # the loop's skip names the slate's first film
        return out
    team = teams[chosen]
    out[0, team] = max(reward, 0.0)
    out[1, team] = reward
    out[2, team] = reward
    out[3, team] = 1.0
    return out


def measure(args: Args) -> dict[str, Any]:
    run = open_run(args.run, cache_size=args.visitors * 2)
    acts = (run.actor(args.a), run.actor(args.b))
    crowds = (run.people(), run.people(), run.people())  # A alone, B alone, interleaved
    plain: list[tuple[float, float]] = []
    diffs: list[np.ndarray] = []
    for i, user in enumerate(run.visitors(args.seed, 0, args.visitors)):
        slates = [
            run.slate(user, act, args.k, args.temperature, np.random.default_rng([args.seed, i, t]))
            for t, act in enumerate(acts)
        ]
        sa, sb = slates
        if sa is None or sb is None:
            continue
        answer = [
            run.respond(crowds[t], user, s, np.random.default_rng([args.seed, i, 9]))
            for t, s in enumerate((sa, sb))
        ]
        plain.append((answer[0].reward, answer[1].reward))
        rows, teams = team_draft(sa, sb, args.k, np.random.default_rng([args.seed, i, 11]))
        got = run.respond(crowds[2], user, rows, np.random.default_rng([args.seed, i, 9]))
        keys = [str(run.ranker.keys[j]) for j in rows]
        chosen = None if got.movie is None else keys.index(got.movie)
        c = _credits(teams, chosen, got.reward, got.reward)
        diffs.append(c[:, TEAM_B] - c[:, TEAM_A])
    ab = np.asarray(plain)
    d = np.asarray(diffs)
    gap = float(ab[:, 1].mean() - ab[:, 0].mean())
    relative = gap / abs(float(ab[:, 0].mean()))
    se_ab = float(np.sqrt((ab[:, 0].var(ddof=1) + ab[:, 1].var(ddof=1)) / args.slates))
    sized = PromotionRules(looks=args.looks)

    def plan(z: float) -> int | None:
        """Slates for 80% power at ``args.lift``, the z scaled from B's gain (none if B lost)."""
        if not (z > 0 and relative > 0):
            return None
        at_lift = z * args.lift / relative
        alpha = sized.alpha / 2.0
        return plan_size(at_lift, args.slates, args.looks, alpha, futility_from=sized.futility_from)

    rules = {}
    for j, name in enumerate(RULES):
        mean, sd = float(d[:, j].mean()), float(d[:, j].std(ddof=1))
        z = mean / sd * np.sqrt(args.slates)
        rules[name] = {"b_minus_a": mean, "sd": sd, "z": z, "slates_for_power": plan(z)}
    return {
        "args": {k: str(v) for k, v in asdict(args).items()},
        "visitors": int(ab.shape[0]),
        "ab": {
            "a": float(ab[:, 0].mean()),
            "b": float(ab[:, 1].mean()),
            "b_minus_a": gap,
            "relative": relative,
            "z": gap / se_ab,
            "slates_for_power": plan(gap / se_ab),
        },
        "interleaved": rules,
    }


def main(args: Args) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = measure(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    ab = out["ab"]
    print(
        f"A/B: v{args.a} {ab['a']:.4f}, v{args.b} {ab['b']:.4f} ({100 * ab['relative']:+.1f}%), "
        f"z {ab['z']:+.2f} at {args.slates} slates per arm; {_plan(ab, args)}"
    )
    for name, r in out["interleaved"].items():
        print(
            f"  {name:>12}: {r['b_minus_a']:+.4f} (sd {r['sd']:.3f}), z {r['z']:+.2f}; "
            f"{_plan(r, args)}"
        )


def _plan(row: dict[str, Any], args: Args) -> str:
    need = row["slates_for_power"]
    if need is None:
        return "no plan (B not ahead)"
    return f"{need:,} slates for 80% power at +{100 * args.lift:.0f}% ({args.looks} looks)"


if __name__ == "__main__":
    main(tyro.cli(Args))
