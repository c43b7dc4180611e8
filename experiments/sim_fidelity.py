"""Simulator fidelity: does the simulator rank policies the way real held-out behaviour does?

On one time split of a MovieLens folder (each user's ratings 80/20 in time), every policy is
measured twice:

- real: protocol (a) on the test part (Precision@10, NDCG@10 over all users; the offline
  experiment's protocol), each policy scoring the whole catalogue from the user's train part;
- simulated: the same policy playing the simulator built from the train part only (world,
  consumption and choice models fitted there), each episode a real user starting from their
  whole train-part history, ranking the simulator's candidates: hit rate (steps with a choice)
  and mean return.

Policies: random, most-popular, item-bias, MF-greedy (the history's rating-weighted embedding),
EASE (the recency-weighted retriever the agent's ranking adds to), RP3beta (the graph baseline)
and the agent (what is served: base + e . a). Kendall tau and Spearman rho between each
simulated figure and real P@10 are reported for three simulators: the original choice model
(rating only, with the invented boredom prior), the calibrated choice with that prior
(the previous default), and the calibrated choice with boredom fitted on the real sequences
(``env.calibration``: today's), with a PNG scatter.

    .venv/bin/python -m experiments.sim_fidelity [--data PATH] [--json] [--plot fidelity.png]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tyro
from scipy import stats

from agent.baselines.simple import BASELINES
from agent.evaluation.offline import (
    Scorer,
    TimeSplit,
    evaluate_full_ranking,
    popularity_scorer,
    random_scorer,
    time_split,
)
from agent.evaluation.simulated import evaluate_policies
from agent.policies import AgentPolicy, SlatePolicy
from env.choice import CalibratedChoice, ChoiceModel, MultinomialLogitChoice
from env.user_model import UserModelConfig
from env.world import BUNDLED_MOVIELENS, SimulationWorld
from experiments.offline_ranking import (
    Args as OfflineArgs,
)
from experiments.offline_ranking import (
    _Histories,
    item_bias_scorer,
    part_world,
    served_scorer,
    train_agent,
)
from features.graph.schema import EdgeKind
from features.importers.movielens import load_movielens

logger = logging.getLogger(__name__)

POLICIES = ("random", "most-popular", "item-bias", "mf-greedy", "ease", "rp3beta", "agent")


@dataclass
class Args:
    """Simulator fidelity report."""

    data: Path = BUNDLED_MOVIELENS
    """A MovieLens folder (latest-small, ML-1M or ML-100K layout)."""
    train_fraction: float = 0.8
    seed: int = 0
    timesteps: int = 40_000
    """Agent training steps in the train part's simulator."""
    agent: Path | None = None
    """A trained agent for this split (experiments.offline_ranking --save-agent) to reuse."""
    slate_features: tuple[str, ...] = ()
    """Slate features the agent's action weighs (as given to offline_ranking for --agent)."""
    slate_feature_reach: float = 1.0
    """Their reach (as given to offline_ranking for --agent)."""
    eval_seeds: int = 3
    episodes: int = 60
    """Episodes per evaluation seed and policy."""
    estimator: str = "stratified"
    """How returns are estimated (agent.evaluation.simulated): stratified or simple."""
    plot: Path | None = Path("sim_fidelity.png")
    json: bool = False


def retriever_scorer(split: TimeSplit, world: SimulationWorld, name: str) -> Scorer:
    """A world retriever (EASE, RP3beta) scoring the whole catalogue from the train part."""
    histories = _Histories(split, world)
    retriever = world.retrievers[name]
    return lambda users: np.stack(
        [retriever.scores(histories(int(u)))[histories.rows] for u in users]
    )


def mf_greedy_scorer(split: TimeSplit, world: SimulationWorld) -> Scorer:
    """The MF-greedy baseline's score (``agent.baselines.simple.MFGreedyPolicy``) everywhere."""
    histories = _Histories(split, world)
    emb = world.embeddings.vectors.astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), split.n_items))
        for i, u in enumerate(users):
            h = histories(int(u))
            if h.items:
                w = np.asarray(h.ratings) - 3.0
                out[i] = (emb @ (w @ emb[np.asarray(h.items)] / len(h.items)))[histories.rows]
        return out

    return score


def rank_agreement(sim: Sequence[float], real: Sequence[float]) -> dict[str, float]:
    """Kendall tau and Spearman rho between two figures over the same policies."""
    tau = stats.kendalltau(sim, real)
    rho = stats.spearmanr(sim, real)
    return {"kendall_tau": float(tau.statistic), "spearman_rho": float(rho.statistic)}


def main(args: Args) -> dict[str, object]:
    logging.basicConfig(level=logging.WARNING)
    rated = load_movielens(args.data).deduplicated().edges[EdgeKind.RATED]
    split = time_split(rated, args.train_fraction)
    offline = OfflineArgs(
        data=args.data,
        seed=args.seed,
        timesteps=args.timesteps,
        agent=args.agent,
        slate_features=args.slate_features,
        slate_feature_reach=args.slate_feature_reach,
    )
    world = part_world(offline, split)
    model, _ = train_agent(offline, world)
    real_scorers: dict[str, Scorer] = {
        "random": random_scorer(split, args.seed),
        "most-popular": popularity_scorer(split),
        "item-bias": item_bias_scorer(split),
        "mf-greedy": mf_greedy_scorer(split, world),
        "ease": retriever_scorer(split, world, "ease"),
        "rp3beta": retriever_scorer(split, world, "rp3beta"),
        "agent": served_scorer(split, world, model),
    }
    real = {name: evaluate_full_ranking(s, split, 10) for name, s in real_scorers.items()}
    policies: list[SlatePolicy] = [BASELINES[n]() for n in POLICIES if n != "agent"] + [
        AgentPolicy(model, name="agent")
    ]
    calibrated = world.choice_model()
    assert isinstance(calibrated, CalibratedChoice)
    prior = UserModelConfig()
    sims: dict[str, tuple[ChoiceModel, UserModelConfig]] = {
        "rating-only choice (original)": (MultinomialLogitChoice(), prior),
        "calibrated choice, invented boredom (previous)": (
            dataclasses.replace(calibrated, w_boredom=CalibratedChoice.w_boredom),
            prior,
        ),
        "calibrated choice, fitted boredom": (calibrated, world.user_config()),
    }
    out: dict[str, object] = {
        "config": {k: str(v) for k, v in asdict(args).items()},
        "choice_fit": world.settings.get("choice_fit"),
        "real": {n: {"p_at_10": r["precision"], "ndcg_at_10": r["ndcg"]} for n, r in real.items()},
        "simulators": {},
    }
    p10 = [real[n]["precision"] for n in POLICIES]
    for label, (choice, users) in sims.items():
        reports = evaluate_policies(
            policies,
            world,
            seeds=tuple(range(args.eval_seeds)),
            episodes_per_seed=args.episodes,
            split="train",
            history_size=1_000_000,  # the user's whole train part, as the real protocol
            estimator=args.estimator,
            choice=choice,
            user_config=users,
        )
        by = {r.policy: r for r in reports}
        hit = [by[n].hit_rate for n in POLICIES]
        ret = [by[n].mean_return for n in POLICIES]
        out["simulators"][label] = {  # type: ignore[index]
            "policies": {
                n: {
                    "hit_rate": by[n].hit_rate,
                    "mean_return": by[n].mean_return,
                    "ci95": [by[n].ci95_low, by[n].ci95_high],
                }
                for n in POLICIES
            },
            "hit_rate_vs_p10": rank_agreement(hit, p10),
            "return_vs_p10": rank_agreement(ret, p10),
        }
    if args.plot is not None:
        _plot(out, args.plot)
        out["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print(out)
    return out


def _print(out: dict[str, object]) -> None:
    real = out["real"]
    for label, sim in out["simulators"].items():  # type: ignore[attr-defined]
        print(label)
        for n in POLICIES:
            s = sim["policies"][n]
            print(
                f"  {n:14s} real P@10 {real[n]['p_at_10']:.4f} NDCG {real[n]['ndcg_at_10']:.4f}"  # type: ignore[index]
                f" | sim hit {s['hit_rate']:.3f} return {s['mean_return']:6.2f}"
            )
        print(f"  hit rate vs P@10: {sim['hit_rate_vs_p10']}")
        print(f"  return vs P@10:   {sim['return_vs_p10']}")


def _plot(out: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sims = out["simulators"]
    real = out["real"]
    fig, axes = plt.subplots(1, len(sims), figsize=(5 * len(sims), 4), squeeze=False)  # type: ignore[arg-type]
    for ax, (label, sim) in zip(axes[0], sims.items(), strict=True):  # type: ignore[attr-defined]
        xs = [real[n]["p_at_10"] for n in POLICIES]  # type: ignore[index]
        ys = [sim["policies"][n]["hit_rate"] for n in POLICIES]
        ax.scatter(xs, ys)
        for n, x, y in zip(POLICIES, xs, ys, strict=True):
            ax.annotate(n, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        tau = sim["hit_rate_vs_p10"]["kendall_tau"]
        ax.set_title(f"{label}\nKendall tau {tau:.2f}")
        ax.set_xlabel("real P@10 (protocol a)")
        ax.set_ylabel("simulated hit rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(tyro.cli(Args))
