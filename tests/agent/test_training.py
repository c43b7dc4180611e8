"""Training smoke test, save/load, the MLflow registry round trip and resuming."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from agent.config import AgentConfig
from agent.evaluation.simulated import confidence_interval, evaluate_policies
from agent.factory import load_agent
from agent.policies import AgentPolicy
from agent.registry import PolicyNotFoundError, PolicyRegistry
from agent.training import TrainConfig, checkpoint_dir, train
from agent.wrappers import ActionPenalty
from env.world import SimulationWorld
from marquee.home import Home

REPO = Path(__file__).resolve().parents[2]


def _config(timesteps: int, **kw: object) -> TrainConfig:
    agent = AgentConfig(learning_starts=50, batch_size=32, buffer_size=5_000)
    return TrainConfig(
        agent=agent,
        timesteps=timesteps,
        n_envs=2,
        eval_every=10**9,
        eval_episodes=2,
        checkpoint_every=100,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Home(tmp_path / "home")


def test_learn_200_steps_logs_registers_and_reloads(home: Home, ml_world: SimulationWorld) -> None:
    result = train(home, ml_world, _config(200, aliases=("champion",)))
    assert result.timesteps >= 200
    assert result.learned_steps == result.timesteps  # a fresh run learns every step it counts
    assert 0 < result.learn_seconds < result.seconds
    assert result.version == 1
    run = mlflow.MlflowClient(home.tracking_uri).get_run(result.run_id)
    assert run.data.params["agent.algo"] == "ddpg"
    assert "eval/final_return" in run.data.metrics
    # nothing written outside the home folder
    assert (home.tracking_dir / "mlflow.db").exists()

    # registry round trip: the alias resolves to the zip we trained, same actions
    registry = PolicyRegistry(home.tracking_uri)
    version = registry.resolve("champion")
    assert version.version == 1 and version.algo == "ddpg"
    trained = load_agent(str(result.model_path))
    fetched = load_agent(str(version.zip_path), algo=version.algo)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, trained.observation_space.shape[0]))
    a1, _ = trained.predict(obs.astype(np.float32), deterministic=True)
    a2, _ = fetched.predict(obs.astype(np.float32), deterministic=True)
    assert np.array_equal(a1, a2)
    assert registry.versions()[0]["aliases"] == ["champion"]
    with pytest.raises(PolicyNotFoundError, match="no version 'challenger'"):
        registry.resolve("challenger")

    # a fresh process (as `marquee serve` is) resolving a version writes nothing where it runs:
    # MLflow's default store there would be ./mlflow.db, and two processes starting in one
    # folder race to create its tables
    elsewhere = home.root.parent / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys; from agent.registry import PolicyRegistry; "
        "print(PolicyRegistry(sys.argv[1]).resolve('champion').zip_path)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # as a shell's
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", code, home.tracking_uri],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip().splitlines()[-1]) == version.zip_path
    assert list(elsewhere.iterdir()) == []


def test_resume_continues_from_the_checkpoint(home: Home, ml_world: SimulationWorld) -> None:
    first = train(home, ml_world, _config(200, register=False))
    assert (checkpoint_dir(home, "train") / "buffer.pkl").exists()
    resumed = train(home, ml_world, _config(400, register=False), resume=True)
    assert resumed.timesteps >= 400
    # the loop's rate counts only the steps this call took, not the checkpoint's
    assert resumed.learned_steps == resumed.timesteps - first.timesteps
    assert resumed.run_id == first.run_id  # the same MLflow run goes on


def test_action_penalty_is_subtracted(ml_world: SimulationWorld) -> None:
    import gymnasium as gym

    env = ActionPenalty(gym.make("marquee/MovieRec-v0", world=ml_world), weight=0.5)
    bare = gym.make("marquee/MovieRec-v0", world=ml_world)
    a = np.full(env.action_space.shape, 0.4, dtype=np.float32)
    env.reset(seed=1)
    bare.reset(seed=1)
    _, r_pen, *_, info = env.step(a)
    _, r_bare, *_ = bare.step(a)
    assert r_pen == pytest.approx(r_bare - 0.5 * 0.16)
    assert info["action_penalty"] == pytest.approx(0.08)
    with pytest.raises(ValueError, match="must be >= 0"):
        ActionPenalty(bare, weight=-1)


def test_evaluation_reports_intervals_over_seeds(ml_world: SimulationWorld) -> None:
    from agent.baselines.simple import MostPopularPolicy, RandomPolicy

    reports = evaluate_policies(
        [RandomPolicy(), MostPopularPolicy()], ml_world, seeds=(0, 1, 2), episodes_per_seed=3
    )
    for r in reports:
        assert len(r.seed_returns) == 3
        assert r.ci95_low <= r.mean_return <= r.ci95_high
        assert 0 < r.coverage <= 1 and 0 <= r.hit_rate <= 1
    with pytest.raises(ValueError, match="at least two"):
        confidence_interval([1.0])
    with pytest.raises(ValueError, match="at least two seeds"):
        evaluate_policies([AgentPolicy(None)], ml_world, seeds=(0,))
