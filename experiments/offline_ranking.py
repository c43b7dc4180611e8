"""Offline ranking evaluation on real logged ratings, no simulator in the loop at test time.

Protocols (agent/evaluation/offline.py): (a) full ranking with each user's ratings split 80/20
in time order, Precision/Recall/NDCG@k; (b) the DRR protocol, ranking only each user's test
items with relevant = rating >= 4, Precision/NDCG@k. Most-popular, item-bias, a biased-MF
rating predictor and EASE are reported beside the agent, and two-stage rows
(agent/evaluation/two_stage.py): the agent reranking the top n of EASE or of most-popular, and
z-scored blends of EASE and the agent. Every n and weight given is printed (a sweep; nothing is
picked on the test part). "random" is the floor and "oracle (test labels)" the ceiling of each
protocol: the oracle reads the test ratings and is printed only to show what is attainable.

To keep the agent honest, everything it uses comes from the train part only: the catalogue's
ratings, its item embeddings, the simulator it trains in (world model fitted on the train
part), and each user's state (built from their train history). Most-popular, item-bias and
EASE are fitted on the same train part.

    .venv/bin/python -m experiments.offline_ranking [--timesteps 40000] [--json]
"""

from __future__ import annotations

import json
import logging
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
    evaluate_drr,
    evaluate_full_ranking,
    oracle_scorer,
    popularity_scorer,
    random_scorer,
    time_split,
)
from agent.evaluation.two_stage import rerank_top_n, zscore_blend
from agent.factory import load_agent
from agent.policies import AgentPolicy
from agent.training import TrainConfig, train
from env.world import BUNDLED_MOVIELENS, SimulationWorld
from env.world_model import WorldModel
from features.candidates import CandidateGenerator
from features.catalog import Catalog
from features.graph.schema import EdgeKind, VertexKind
from features.importers.movielens import load_movielens
from features.state import StateBuilder, UserHistory
from marquee.home import Home

logger = logging.getLogger(__name__)


@dataclass
class Args:
    """Offline ranking evaluation."""

    data: Path = BUNDLED_MOVIELENS
    train_fraction: float = 0.8
    k: int = 10
    timesteps: int = 40_000
    dim: int = 16
    seed: int = 0
    ease_l2: float = 500.0
    rerank_n: tuple[int, ...] = (20, 50, 100, 200)
    """Candidate-set sizes for "the agent reranks the retriever's top n" rows (all printed)."""
    blend_weights: tuple[float, ...] = (0.25, 1.0)
    """Agent weights w for "z(EASE) + w z(agent)" rows (all printed: a sweep, not a pick)."""
    skip_agent: bool = False
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


def agent_scorer(
    split: TimeSplit, world: SimulationWorld, model: object, candidates_only: bool = False
) -> Scorer:
    """The actor's action for each user's train-part state, dotted with every item. With
    ``candidates_only`` the product's own candidate set (graph traversal + popular fallbacks,
    as served) is ranked first and every other item after it, as the service would."""
    cat = world.catalog
    rows = cat.index_of(list(split.item_keys))
    emb = world.embeddings.vectors[rows].astype(np.float64)
    builder = StateBuilder(cat, world.embeddings, pool_hops=world.pool_hops)
    policy = AgentPolicy(model)
    generator = CandidateGenerator(cat)
    position = np.full(cat.n_movies, -1, dtype=np.int64)
    position[rows] = np.arange(rows.shape[0])
    actions: dict[int, np.ndarray] = {}  # the actor is deterministic: one action per user

    def score(users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), split.n_items))
        for i, u in enumerate(users):
            history: UserHistory | None = None
            if int(u) not in actions or candidates_only:
                movies, ratings = world.user_ratings(str(split.user_keys[u]))
                history = UserHistory.from_ratings(cat.n_movies, movies, ratings)
                actions.setdefault(int(u), policy.action(builder.build(history)))
            out[i] = emb @ actions[int(u)]
            if candidates_only and history is not None:
                cands = position[generator.generate(history)]
                boost = np.zeros(split.n_items)
                boost[cands[cands >= 0]] = 1e6
                out[i] += boost
        return out

    return score


def train_part_world(args: Args, split: TimeSplit) -> SimulationWorld:
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
    return SimulationWorld.build(catalog, dim=args.dim, test_fraction=0.0, seed=args.seed)


def main(args: Args) -> dict[str, object]:
    logging.basicConfig(level=logging.WARNING)
    logger.info("config %s", asdict(args))
    rated = load_movielens(args.data).deduplicated().edges[EdgeKind.RATED]
    split = time_split(rated, args.train_fraction)
    scorers: dict[str, Scorer] = {
        "oracle (test labels)": oracle_scorer(split),
        "random": random_scorer(split, args.seed),
        "most-popular": popularity_scorer(split),
        "item-bias": item_bias_scorer(split),
        "mf-rating": mf_scorer(split, args.seed),
    }
    t = time.perf_counter()
    scorers["ease"] = ease_scorer(split, args.ease_l2)
    timings = {"ease_fit_s": time.perf_counter() - t}
    if not args.skip_agent:
        world = train_part_world(args, split)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(
                agent=AgentConfig(seed=args.seed),
                timesteps=args.timesteps,
                eval_every=10**9,
                checkpoint_every=10**9,
                register=False,
            )
            result = train(Home(Path(tmp)), world, cfg)
            model = load_agent(str(result.model_path))
        timings["agent_train_s"] = result.seconds
        ddpg = agent_scorer(split, world, model)
        scorers["ddpg"] = ddpg
        scorers["ddpg-candidates"] = agent_scorer(split, world, model, candidates_only=True)
        rated = split.train_matrix()
        for n in args.rerank_n:
            scorers[f"ddpg > ease top-{n}"] = rerank_top_n(scorers["ease"], ddpg, n, rated)
            scorers[f"ddpg > pop top-{n}"] = rerank_top_n(scorers["most-popular"], ddpg, n, rated)
        for w in args.blend_weights:
            scorers[f"z(ease) + {w:g} z(ddpg)"] = zscore_blend(
                {"ease": scorers["ease"], "ddpg": ddpg}, {"ease": 1.0, "ddpg": w}, rated
            )
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
            }
        )
    out = {"config": {k: str(v) for k, v in asdict(args).items()}, "rows": rows, **timings}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"protocol (a) users {int(a['users'])}, protocol (b) users {int(b['users'])}")
        print(
            f"{'model':24s} {'a P@k':>7s} {'a R@k':>7s} {'a NDCG':>7s} {'b P@k':>7s} {'b NDCG':>7s}"
        )
        for r in rows:
            print(
                f"{r['model']:24s} {r['a_precision']:7.4f} {r['a_recall']:7.4f} "
                f"{r['a_ndcg']:7.4f} {r['b_precision']:7.4f} {r['b_ndcg']:7.4f}"
            )
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
