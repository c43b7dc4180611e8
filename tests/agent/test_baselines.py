"""Every baseline speaks the SlatePolicy interface and ranks the way its name says."""

from __future__ import annotations

import numpy as np
import pytest

from agent.baselines.simple import BASELINES, OraclePolicy
from env.movie_rec_env import MovieRecEnv
from env.world import SimulationWorld
from features.candidates import retriever_scores


@pytest.fixture
def env(ml_world: SimulationWorld) -> MovieRecEnv:
    e = MovieRecEnv(ml_world, split="test")
    e.reset(seed=3)
    return e


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_returns_a_valid_slate(name: str, env: MovieRecEnv) -> None:
    obs, _ = env.reset(seed=5)
    ctx = env.slate_context(np.random.default_rng(0))
    slate = BASELINES[name]().select(obs, ctx)
    assert slate.shape == (ctx.k,)
    assert np.unique(slate).shape[0] == ctx.k
    assert np.isin(slate, ctx.candidates).all()
    _, _, _, _, info = env.step_slate(slate)  # the env accepts it
    assert list(info["slate"]) == list(slate)


def test_most_popular_orders_by_rating_count(env: MovieRecEnv) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    slate = BASELINES["most-popular"]().select(np.zeros(1, np.float32), ctx)
    pops = env.world.catalog.popularity[slate]
    assert list(pops) == sorted(pops, reverse=True)
    assert pops[-1] >= np.sort(env.world.catalog.popularity[ctx.candidates])[-ctx.k]


@pytest.mark.parametrize("name", ["ease", "rp3beta", "item-bias"])
def test_retriever_baselines_order_by_their_scores(env: MovieRecEnv, name: str) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    slate = BASELINES[name]().select(np.zeros(1, np.float32), ctx)
    scores = retriever_scores(ctx.retrievers[name], ctx.history)
    assert list(scores[slate]) == sorted(scores[slate], reverse=True)
    assert scores[slate][-1] >= np.sort(scores[ctx.candidates])[-ctx.k]


def test_retriever_baseline_without_its_retriever_is_refused(env: MovieRecEnv) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    bare = type(ctx)(**{**ctx.__dict__, "retrievers": {}})
    with pytest.raises(ValueError, match="needs the world's ease retriever"):
        BASELINES["ease"]().select(np.zeros(1, np.float32), bare)


def test_oracle_picks_the_highest_true_utility(env: MovieRecEnv) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    assert ctx.true_utility is not None
    slate = OraclePolicy().select(np.zeros(1, np.float32), ctx)
    best = np.sort(ctx.true_utility(ctx.candidates))[::-1][: ctx.k]
    assert np.allclose(ctx.true_utility(slate), best)


def test_oracle_without_ground_truth_is_refused(env: MovieRecEnv) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    blind = type(ctx)(**{**ctx.__dict__, "true_utility": None})
    with pytest.raises(ValueError, match="needs the simulator's true utility"):
        OraclePolicy().select(np.zeros(1, np.float32), blind)


def test_random_is_seeded(env: MovieRecEnv) -> None:
    a = BASELINES["random"]().select(np.zeros(1), env.slate_context(np.random.default_rng(7)))
    b = BASELINES["random"]().select(np.zeros(1), env.slate_context(np.random.default_rng(7)))
    assert list(a) == list(b)


@pytest.mark.parametrize(
    ("slate", "message"),
    [
        ([], "a slate holds 1 to 10 movies, got 0"),
        (list(range(11)), "a slate holds 1 to 10 movies, got 11"),
        ("repeat", "the slate repeats a movie"),
        ("foreign", "not among the current candidates"),
    ],
)
def test_step_slate_bad_inputs(env: MovieRecEnv, slate: object, message: str) -> None:
    ctx = env.slate_context(np.random.default_rng(0))
    if slate == "repeat":
        slate = [int(ctx.candidates[0])] * 2
    elif slate == "foreign":
        outside = np.setdiff1d(np.arange(env.world.catalog.n_movies), ctx.candidates)
        slate = [int(outside[0])]
    with pytest.raises(ValueError, match=message):
        env.step_slate(slate)
