"""MovieRecEnv: Gymnasium's checker, reproducibility, options, vector envs, the tiny world."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import env  # registers marquee/MovieRec-v0
from env.choice import MultinomialLogitChoice
from env.movie_rec_env import MovieRecEnv
from env.user_model import UserModelConfig
from env.world import SimulationWorld
from features.ranking import residual_weight
from features.state import UserHistory
from tests.env.conftest import ITEM_SCORE


def test_gymnasium_env_checker_passes(ml_world: SimulationWorld) -> None:
    check_env(MovieRecEnv(ml_world), skip_render_check=True)
    check_env(gym.make(env.ENV_ID, world=ml_world).unwrapped, skip_render_check=True)


def rollout(e: gym.Env, seed: int, steps: int) -> list[tuple[Any, ...]]:
    obs, info = e.reset(seed=seed)
    shape = e.action_space.shape
    assert shape is not None
    acts = np.random.default_rng(seed).uniform(-1, 1, (steps, *shape))
    out: list[tuple[Any, ...]] = [(obs.tobytes(), info["user"])]
    for a in acts:
        obs, r, term, trunc, info = e.step(a.astype(np.float32))
        out.append(
            (
                obs.tobytes(),
                r,
                term,
                trunc,
                info["chosen"],
                str(info["rating"]),
                info["slate"].tolist(),
            )
        )
        if term or trunc:
            obs, info = e.reset()
            out.append((obs.tobytes(), info["user"]))
    return out


def test_same_seed_same_trajectory(ml_world: SimulationWorld) -> None:
    a = rollout(gym.make(env.ENV_ID, world=ml_world, ranking_temperature=0.3), 7, 60)
    b = rollout(gym.make(env.ENV_ID, world=ml_world, ranking_temperature=0.3), 7, 60)
    c = rollout(gym.make(env.ENV_ID, world=ml_world, ranking_temperature=0.3), 8, 60)
    assert a == b
    assert a != c


def test_episode_info_and_truncation(ml_world: SimulationWorld) -> None:
    e = gym.make(
        env.ENV_ID,
        world=ml_world,
        user_config=UserModelConfig(leave_base=0.0, leave_no_choice=0.0, leave_boredom=0.0),
    )
    obs, _ = e.reset(seed=1)
    steps, trunc = 0, False
    while not trunc:
        obs, r, term, trunc, info = e.step(e.action_space.sample())
        steps += 1
        assert not term
        assert obs in e.observation_space
        assert info["oracle_utility"] >= info["slate_best_utility"] and info["regret"] >= 0
        assert len(info["slate"]) == 10 and len(set(info["slate"].tolist())) == 10
        if info["chosen"] >= 0:
            assert info["chosen"] in info["slate"] and r == (info["rating"] - 3) / 2
            assert info["rating"] * 2 == int(info["rating"] * 2) and 0.5 <= info["rating"] <= 5
        else:
            assert r == pytest.approx(-0.1) and np.isnan(info["rating"])
    assert steps == env.MAX_EPISODE_STEPS


def test_reset_user_seeds_the_earliest_ratings(ml_world: SimulationWorld) -> None:
    e = MovieRecEnv(ml_world, history_size=10)
    obs, info = e.reset(seed=0, options={"user": "42"})
    movies, ratings = ml_world.user_ratings("42")
    hist = UserHistory.from_ratings(ml_world.catalog.n_movies, movies[:10], ratings[:10])
    assert info["user"] == "42"
    assert np.array_equal(obs, e.state_builder.build(hist))


def test_test_split_samples_only_test_users(ml_world: SimulationWorld) -> None:
    train, test = set(ml_world.train_users.tolist()), set(ml_world.test_users.tolist())
    assert not train & test and len(train) + len(test) == 610 and len(test) == 122
    e = MovieRecEnv(ml_world, split="test")
    users = {e.reset(seed=s)[1]["user"] for s in range(30)}
    assert users <= test and len(users) > 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slate_size": 0}, "slate_size must be positive, got 0"),
        (
            {"slate_size": 20, "max_candidates": 10},
            r"max_candidates \(10\) must be at least slate_size \(20\)",
        ),
        (
            {"max_candidates": 10**6},
            r"max_candidates \(1000000\) exceeds the catalog's 9742 movies",
        ),
        ({"split": "dev"}, "unknown split 'dev'; expected one of train, test, all"),
        ({"history_size": -1}, "history_size must be >= 0, got -1"),
        ({"ranking_temperature": -0.5}, "ranking_temperature must be >= 0, got -0.5"),
        ({"render_mode": "human"}, "unsupported render_mode 'human'; use 'ansi' or None"),
    ],
)
def test_bad_arguments(ml_world: SimulationWorld, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MovieRecEnv(ml_world, **kwargs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"user": "nobody"}, "unknown user 'nobody': no ratings for that user in this world"),
        ({"colour": "red"}, r"unknown reset options \['colour'\]; accepted: user"),
    ],
)
def test_bad_reset_options(
    ml_world: SimulationWorld, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MovieRecEnv(ml_world).reset(seed=0, options=options)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            np.zeros(3, dtype=np.float32),
            r"action has shape \(3,\) but the action space has shape \(16,\)",
        ),
        (np.full(16, np.nan, dtype=np.float32), "action contains NaN or infinite values"),
    ],
)
def test_bad_actions(ml_world: SimulationWorld, action: np.ndarray, message: str) -> None:
    e = MovieRecEnv(ml_world)
    e.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        e.step(action)


def test_step_before_reset(ml_world: SimulationWorld) -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        MovieRecEnv(ml_world).step(np.zeros(16, dtype=np.float32))


def test_sync_vector_env(ml_world: SimulationWorld) -> None:
    venv = gym.make_vec(env.ENV_ID, num_envs=3, vectorization_mode="sync", world=ml_world)
    obs, _ = venv.reset(seed=3)
    assert obs.shape == (3, *(venv.single_observation_space.shape or ()))
    for _ in range(5):
        obs, rew, _, _, _ = venv.step(venv.action_space.sample())
    assert rew.shape == (3,) and obs.dtype == np.float32
    venv.close()


def test_user_picks_the_movie_the_model_predicts(tiny_world: SimulationWorld) -> None:
    """No boredom, deterministic choice: u1 takes their best unseen movie whatever the order."""
    e = MovieRecEnv(
        tiny_world,
        slate_size=5,
        max_candidates=5,
        history_size=3,  # u1's three ratings: m1, m2, m5 are seen
        choice=MultinomialLogitChoice(temperature=0.0, no_choice_utility=0.0),
    )
    e.reset(seed=0, options={"user": "u1"})
    unseen = {k: v for k, v in ITEM_SCORE.items() if k not in ("m1", "m2", "m5")}
    best = max(unseen, key=lambda k: unseen[k])
    _, _, _, _, info = e.step(np.array([1.0, -1.0, 0.5], dtype=np.float32))
    assert sorted(info["slate_keys"]) == sorted(unseen)
    assert info["chosen_key"] == best == "m6"
    assert info["utility"] == pytest.approx(3 + ITEM_SCORE["m6"])
    assert info["regret"] == 0.0


def test_tiny_world_saves_and_loads(tiny_world: SimulationWorld, tmp_path: Path) -> None:
    folder = tiny_world.save(tmp_path / "world")
    tiny_world.save(folder)  # replacing a saved world works and leaves no stray folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]
    back = SimulationWorld.load(folder)
    assert np.array_equal(back.embeddings.vectors, tiny_world.embeddings.vectors)
    assert back.test_users.tolist() == ["u4"] and back.settings == {"tiny": True}
    e = MovieRecEnv(str(folder), slate_size=2, max_candidates=4)
    obs, info = e.reset(seed=0)
    assert info["user"] in {"u1", "u2", "u3"} and obs.shape == e.observation_space.shape


def test_loading_a_folder_that_is_not_a_world(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not a saved world, missing catalog\.npz"):
        SimulationWorld.load(tmp_path)


def test_the_state_pool_comes_from_the_world(ml_world: SimulationWorld) -> None:
    """Agents are served the state they were trained on: worlds built now pool hops 1-2, worlds
    saved before that setting existed keep the hops 2-3 their agents learned from."""
    from features.state import LEGACY_POOL_HOPS, POOL_HOPS

    assert ml_world.pool_hops == POOL_HOPS
    legacy = dataclasses.replace(ml_world, settings={"dim": 16})
    assert legacy.pool_hops == LEGACY_POOL_HOPS
    assert MovieRecEnv(legacy).state_builder.pool_hops == LEGACY_POOL_HOPS
    assert MovieRecEnv(ml_world).state_builder.pool_hops == POOL_HOPS


def test_slate_features_widen_the_action(tiny_world: SimulationWorld) -> None:
    """A world built with slate features: the action is the embedding's dimension plus one
    weight per feature, the env passes its checks, and a weight on quality alone ranks the
    candidates by their quality."""
    plain = MovieRecEnv(tiny_world, slate_size=2, max_candidates=6)
    assert plain.action_space.shape == (3,) and tiny_world.slate_features is None
    world = dataclasses.replace(
        tiny_world, settings={**tiny_world.settings, "slate_features": ["quality", "variety"]}
    )
    e = MovieRecEnv(world, slate_size=2, max_candidates=6)
    assert e.action_space.shape == (5,) and world.action_dim == 5
    check_env(e, skip_render_check=True)
    e.reset(seed=0, options={"user": "u1"})
    ctx = e.slate_context(np.random.default_rng(0))
    assert ctx.extras is not None and ctx.extras.shape == (ctx.candidates.shape[0], 2)
    quality = np.array([0, 0, 0, 1.0, 0], dtype=np.float32)
    _, _, _, _, info = e.step(quality)
    best = ctx.candidates[np.argsort(-ctx.extras[:, 0], kind="stable")[:2]]
    assert sorted(info["slate"].tolist()) == sorted(best.tolist())


def test_slate_feature_reach_bounds_the_feature_corrections(tiny_world: SimulationWorld) -> None:
    """The world's reach scales what a feature weight of 1 adds (a share of the base weight),
    so the agent's [-1, 1] weights cannot move scores further than that."""
    settings = {**tiny_world.settings, "slate_features": ["quality", "variety"]}
    full = dataclasses.replace(tiny_world, settings=settings)
    short = dataclasses.replace(tiny_world, settings={**settings, "slate_feature_reach": 0.25})
    assert full.slate_feature_reach == 1.0 and short.slate_feature_reach == 0.25
    assert full.slate_features is not None and short.slate_features is not None
    assert short.slate_features.weight == pytest.approx(0.25 * full.slate_features.weight)
    assert full.slate_features.weight == full.base_weight


def test_the_residual_ramp_leaves_short_histories_to_the_retriever(
    tiny_world: SimulationWorld,
) -> None:
    """Below the ramp a user gets no correction: any action ranks as the zero action (the
    retriever); with no ramp the same action changes the slate."""
    slates = {}
    for ramp in (0.0, 1000.0):
        world = dataclasses.replace(
            tiny_world, settings={**tiny_world.settings, "residual_ramp": ramp}
        )
        e = MovieRecEnv(world, slate_size=2, max_candidates=6)
        picks = []
        for action in (np.zeros(3), np.array([-1.0, 1.0, -1.0]), np.array([1.0, -1.0, 1.0])):
            e.reset(seed=0, options={"user": "u1"})
            ctx = e.slate_context(np.random.default_rng(0))
            assert ctx.residual == residual_weight(len(ctx.history.items), ramp)
            _, _, _, _, info = e.step(action.astype(np.float32))
            picks.append(info["slate"].tolist())
        slates[ramp] = picks
    assert slates[1000.0][0] == slates[1000.0][1] == slates[1000.0][2]
    assert len({tuple(p) for p in slates[0.0]}) > 1
