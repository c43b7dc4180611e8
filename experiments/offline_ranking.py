"""Offline ranking evaluation on real logged ratings, no simulator in the loop at test time.

Protocols (agent/evaluation/offline.py): (a) full ranking with each user's ratings split 80/20
in time order, Precision/Recall/NDCG@k and how personal the top-k lists are (distinct movies,
the largest share of lists one movie is in); (b) the DRR protocol, ranking only each user's
test items with relevant = rating >= 4, Precision/NDCG@k; and cold start: 20% of the users
keep only their first 10 interactions, the rest of theirs is ranked as in (a).

Rows: "served" is exactly what ``marquee serve`` ranks at temperature 0: the candidate
generator's candidates (the retriever's top N, graph candidates, popular fallbacks) scored
base + e . a by features.ranking.rank, then every other movie below them. "retriever (a = 0)"
is the same with a zero action, i.e. what the agent adds to. Beside them: most-popular,
item-bias, a biased-MF rating predictor, EASE (Steck 2019, binary, l2 = 500: the baseline),
RP3beta over the knowledge graph, "random" (the floor) and "oracle (test labels)" (the ceiling:
it reads the test ratings and is printed only to show what is attainable).

Everything the agent uses comes from the train part only: the catalogue's ratings, its item
embeddings and retriever, the simulator it trains in (world, consumption and choice models
fitted on the train part), and each user's state. The baselines are fitted on the same part.

    .venv/bin/python -m experiments.offline_ranking [--data PATH] [--timesteps 40000] [--json]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tyro

from agent.baselines.ease import EASE
from agent.config import AgentConfig
from agent.evaluation.offline import (
    Scorer,
    TimeSplit,
    cold_split,
    evaluate_drr,
    evaluate_full_ranking,
    oracle_scorer,
    popularity_scorer,
    random_scorer,
    time_split,
)
from agent.factory import load_agent
from agent.policies import AgentPolicy
from agent.training import TrainConfig, train
from env.world import BUNDLED_MOVIELENS, SimulationWorld
from env.world_model import WorldModel
from features.candidates import CandidateGenerator, base_scores, retriever_scores
from features.catalog import Catalog
from features.graph.schema import EdgeKind, VertexKind
from features.importers.movielens import load_movielens
from features.ranking import candidate_scores, residual_weight
from features.retrieval import RP3Beta
from features.state import StateBuilder, UserHistory
from marquee.home import Home

logger = logging.getLogger(__name__)


@dataclass
class Args:
    """Offline ranking evaluation."""

    data: Path = BUNDLED_MOVIELENS
    """A MovieLens folder: latest-small CSVs, ML-1M .dat or ML-100K u.data/u.item."""
    train_fraction: float = 0.8
    k: int = 10
    timesteps: int = 40_000
    dim: int = 16
    seed: int = 0
    ease_l2: float = 500.0
    cold_first_n: int = 10
    skip_agent: bool = False
    slate_features: tuple[str, ...] = ()
    """Slate features the agent's action weighs (quality, variety; features.slate_features)."""
    slate_feature_reach: float = 1.0
    """A feature weight of 1 moves scores this fraction of the base (the correction's bound)."""
    skip_cold: bool = False
    agent: Path | None = None
    """Load this trained agent (a .zip from a run on the same split) instead of training."""
    save_agent: Path | None = None
    """Keep a copy of the protocol (a) agent here (for experiments.sim_fidelity --agent)."""
    json: bool = False


def item_bias_scorer(split: TimeSplit, shrink: float = 10.0) -> Scorer:
    """Each item's shrunk mean rating offset in the train part (the same for every user)."""
    tr = split.train
    mu = float(tr["rating"].mean())
    count = np.bincount(tr["item"], minlength=split.n_items)
    total = np.bincount(tr["item"], weights=tr["rating"] - mu, minlength=split.n_items)
    bias = total / (count + shrink)
    return lambda users: np.tile(bias, (len(users), 1))


def mf_scorer(split: TimeSplit, seed: int) -> Scorer:
    """Predicted rating from the simulator's biased MF (env.world_model) fitted on the train
    part: a reference for how far a rating predictor gets under each protocol."""
    tr = split.train
    model = WorldModel.fit(
        split.user_keys[tr["user"]],
        tr["item"].to_numpy(),
        tr["rating"].to_numpy(),
        split.n_items,
        seed=seed,
    )
    rows = np.searchsorted(model.user_keys, split.user_keys)
    return lambda users: np.stack([model.predict_user(rows[u]) for u in users])


def ease_scorer(split: TimeSplit, l2: float) -> Scorer:
    x = split.train_matrix()
    model = EASE(l2).fit(x)
    return lambda users: model.scores(x[users])


class _Histories:
    """Each user's train-part history in the world's catalogue rows, oldest first."""

    def __init__(self, split: TimeSplit, world: SimulationWorld) -> None:
        self.split, self.world = split, world
        cat = world.catalog
        rows = cat.index_of(list(split.item_keys))
        self.position = np.full(cat.n_movies, -1, dtype=np.int64)
        self.position[rows] = np.arange(rows.shape[0])
        self.rows = rows

    def __call__(self, user: int) -> UserHistory:
        key = str(self.split.user_keys[user])
        if not self.world.has_user(key):
            return UserHistory(self.world.catalog.n_movies)
        movies, ratings = self.world.user_ratings(key)
        return UserHistory.from_ratings(
            self.world.catalog.n_movies, movies, ratings, last_time=self.world.user_last_time(key)
        )


def rp3beta_scorer(split: TimeSplit, world: SimulationWorld) -> Scorer:
    """RP3beta over the train part's ratings and the graph's content edges."""
    histories = _Histories(split, world)
    walk = RP3Beta.fit(world.catalog)
    return lambda users: np.stack([walk.scores(histories(int(u)))[histories.rows] for u in users])


def served_scorer(split: TimeSplit, world: SimulationWorld, model: object | None) -> Scorer:
    """What the service ranks at temperature 0 (module doc): candidates scored base + e . a,
    every other movie below them in retriever order. ``model`` None: a zero action."""
    cat = world.catalog
    histories = _Histories(split, world)
    builder = StateBuilder(cat, world.embeddings, pool_hops=world.pool_hops)
    policy = AgentPolicy(model) if model is not None else None
    generator = CandidateGenerator(cat, retriever=world.retriever)
    features = world.slate_features
    zero = np.zeros(world.action_dim, dtype=np.float32)

    def score(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), split.n_items), -1e9)
        for i, u in enumerate(users):
            history = histories(int(u))
            if not history.items:
                continue
            action = policy.action(builder.build(history)) if policy is not None else zero
            cands = generator.generate(history)
            base = base_scores(world.retriever, history, cands, world.base_weight)
            extras = None if features is None else features.compute(history, cands)
            residual = residual_weight(len(history.items), world.residual_ramp)
            _, s = candidate_scores(action, cands, world.embeddings.vectors, base, extras, residual)
            if world.retriever is not None:
                rest = retriever_scores(world.retriever, history)[histories.rows]
                out[i] = (rest - rest.max()) / max(float(np.ptp(rest)), 1e-12) - 1e6
            pos = histories.position[cands]
            out[i, pos[pos >= 0]] = s[pos >= 0]
        return out

    return score


def part_world(args: Args, split: TimeSplit) -> SimulationWorld:
    """A catalogue whose ratings are the train part only, and the world built on it."""
    batch = load_movielens(args.data).deduplicated()
    train = split.train
    ratings = pd.DataFrame(
        {
            "src": split.user_keys[train["user"]],
            "dst": split.item_keys[train["item"]],
            "rating": train["rating"].to_numpy(),
            "timestamp": train["timestamp"].to_numpy(),
        }
    )
    catalog = Catalog.from_frames(
        movies=batch.vertices[VertexKind.MOVIE],
        ratings=ratings,
        edges={k: v for k, v in batch.edges.items() if k is not EdgeKind.RATED},
        genre_vertices=batch.vertices.get(VertexKind.GENRE),
    )
    return SimulationWorld.build(
        catalog,
        dim=args.dim,
        test_fraction=0.0,
        seed=args.seed,
        slate_features=args.slate_features,
        slate_feature_reach=args.slate_feature_reach,
    )


def train_agent(
    args: Args, world: SimulationWorld, save: Path | None = None
) -> tuple[object, float]:
    """The agent trained in the train part's simulator (or loaded from ``args.agent``);
    (model, seconds)."""
    if args.agent is not None:
        return load_agent(str(args.agent)), 0.0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            agent=AgentConfig(seed=args.seed),
            timesteps=args.timesteps,
            eval_every=10**9,
            checkpoint_every=10**9,
            register=False,
        )
        result = train(Home(Path(tmp)), world, cfg)
        if save is not None:
            shutil.copyfile(result.model_path, save)
        return load_agent(str(result.model_path)), result.seconds


def scorers_for(
    args: Args, split: TimeSplit, cold: bool = False
) -> tuple[dict[str, Scorer], dict[str, float]]:
    """Every model's scorer on one split (the agent trained on its train part)."""
    scorers: dict[str, Scorer] = {}
    if not cold:
        scorers["oracle (test labels)"] = oracle_scorer(split)
    scorers["random"] = random_scorer(split, args.seed)
    scorers["most-popular"] = popularity_scorer(split)
    scorers["item-bias"] = item_bias_scorer(split)
    scorers["mf-rating"] = mf_scorer(split, args.seed)
    t = time.perf_counter()
    scorers["ease"] = ease_scorer(split, args.ease_l2)
    timings = {"ease_fit_s": time.perf_counter() - t}
    if args.skip_agent:
        return scorers, timings
    t = time.perf_counter()
    world = part_world(args, split)
    timings["world_build_s"] = time.perf_counter() - t
    scorers["rp3beta"] = rp3beta_scorer(split, world)
    scorers["retriever (a = 0)"] = served_scorer(split, world, None)
    if cold:  # another train part: another agent, never a loaded one
        args = dataclasses.replace(args, agent=None)
    model, seconds = train_agent(args, world, None if cold else args.save_agent)
    timings["agent_train_s"] = seconds
    scorers["served"] = served_scorer(split, world, model)
    return scorers, timings


def main(args: Args) -> dict[str, object]:
    logging.basicConfig(level=logging.WARNING)
    logger.info("config %s", asdict(args))
    rated = load_movielens(args.data).deduplicated().edges[EdgeKind.RATED]
    split = time_split(rated, args.train_fraction)
    scorers, timings = scorers_for(args, split)
    rows = []
    for name, scorer in scorers.items():
        a = evaluate_full_ranking(scorer, split, args.k)
        b = evaluate_drr(scorer, split, args.k)
        rows.append(
            {
                "model": name,
                "a_precision": a["precision"],
                "a_recall": a["recall"],
                "a_ndcg": a["ndcg"],
                "b_precision": b["precision"],
                "b_ndcg": b["ndcg"],
                f"distinct_top{args.k}": int(a["distinct_topk"]),
                f"max_top{args.k}_share": a["max_topk_share"],
            }
        )
    out: dict[str, object] = {
        "config": {k: str(v) for k, v in asdict(args).items()},
        "users": {"a": int(a["users"]), "b": int(b["users"])},
        "rows": rows,
        **timings,
    }
    if not args.skip_cold:
        cold = cold_split(rated, args.cold_first_n, seed=args.seed)
        cold_scorers, cold_timings = scorers_for(args, cold, cold=True)
        cold_rows = []
        for name, scorer in cold_scorers.items():
            c = evaluate_full_ranking(scorer, cold, args.k)
            cold_rows.append({"model": name, "precision": c["precision"], "ndcg": c["ndcg"]})
        out["cold"] = {"users": int(c["users"]), "rows": cold_rows, **cold_timings}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print_table(out, args.k)
    return out


def _print_table(out: dict[str, object], k: int) -> None:
    print(f"users: {out['users']}")
    print(
        f"{'model':22s} {'a P@k':>7s} {'a R@k':>7s} {'a NDCG':>7s} {'b P@k':>7s} {'b NDCG':>7s}"
        f" {'distinct':>8s} {'max share':>9s}"
    )
    for r in out["rows"]:  # type: ignore[attr-defined]
        print(
            f"{r['model']:22s} {r['a_precision']:7.4f} {r['a_recall']:7.4f} {r['a_ndcg']:7.4f} "
            f"{r['b_precision']:7.4f} {r['b_ndcg']:7.4f} {r[f'distinct_top{k}']:8d} "
            f"{r[f'max_top{k}_share']:9.3f}"
        )
    cold = out.get("cold")
    if isinstance(cold, dict):
        print(f"cold start ({cold['users']} users, first interactions only): P@k / NDCG@k")
        for r in cold["rows"]:
            print(f"  {r['model']:22s} {r['precision']:7.4f} {r['ndcg']:7.4f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
