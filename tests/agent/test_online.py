"""The online learner: SB3's train() on the Redis ring, checkpoints, challenger versions,
waiting for data, and resuming after a SIGKILL from the last checkpoint (real subprocesses)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from mlflow import MlflowClient

from agent.buffers.redis_ring import RedisRing, Transitions, ring_prefix
from agent.factory import load_agent
from agent.online import (
    ONLINE_LEARNING_RATE,
    LearnerConfig,
    LearnerState,
    OnlineLearner,
    grant_steps,
    learner_dir,
    pace_keys,
    read_state,
    steps_done,
)
from agent.registry import PolicyRegistry
from marquee.home import Home
from tests.serving.policy_home import TrainedHome, trained_home
from tests.serving.redis_server import redis_client

DEADLINE = 180.0  # hang guard for waits on subprocesses, not a speed check
CAPACITY = 1_000


@pytest.fixture
def server_cp(tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A real redis-server with a fresh key prefix."""
    with redis_client("server", tmp_path) as cp:
        yield cp


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


def _home(trained: TrainedHome, tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    shutil.copytree(trained.home.tracking_dir, home.tracking_dir)  # its own registry copy
    return home.ensure()


def _push(client: redis.Redis, prefix: str, trained: TrainedHome, n: int, seed: int = 0) -> None:
    obs = trained.world.catalog.n_genres + 4 * trained.world.embeddings.dim + 2
    act = trained.world.action_dim
    ring = RedisRing(client, ring_prefix(prefix), obs_dim=obs, action_dim=act, capacity=CAPACITY)
    rng = np.random.default_rng(seed)
    ring.push(
        Transitions(
            obs=rng.uniform(-1, 1, (n, obs)).astype(np.float32),
            action=rng.uniform(-1, 1, (n, act)).astype(np.float32),
            next_obs=rng.uniform(-1, 1, (n, obs)).astype(np.float32),
            reward=rng.uniform(-1, 1, n).astype(np.float32),
            done=np.zeros(n, dtype=np.float32),
        )
    )


def _actor_params(path: Path) -> list[np.ndarray]:
    model = load_agent(str(path))
    return [p.detach().numpy().copy() for p in model.actor.parameters()]


def test_learner_trains_checkpoints_and_registers_a_challenger(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 64)
    config = LearnerConfig(
        batch_size=16,
        gradient_steps=5,
        checkpoint_every=10,
        register_every=20,
        max_steps=20,
        rebase=False,  # else the checkpoint is the champion again (rebasing test below)
    )
    learner = OnlineLearner(home, client, prefix, config, buffer_capacity=CAPACITY)
    state = learner.run()
    assert state is not None and state.steps == 20 and learner.resumed_from is None
    assert state.source_version == 1 and len(state.registered) == 1
    folder = learner_dir(home)
    assert read_state(folder) == state
    assert sorted(p.name for p in folder.glob("*.zip")) == [state.zip]  # older ones dropped
    before, after = _actor_params(trained.zip_path), _actor_params(folder / state.zip)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    registry = PolicyRegistry(home.tracking_uri)
    challenger = registry.client.get_model_version_by_alias(registry.model_name, "challenger")
    assert int(challenger.version) == state.registered[0]
    champion = registry.client.get_model_version_by_alias(registry.model_name, "champion")
    assert int(champion.version) == 1  # promotion stays a human (or A/B) decision
    history = MlflowClient(home.tracking_uri).get_metric_history(state.run_id, "online/critic_loss")
    assert [m.step for m in history] == [5, 10, 15, 20]
    assert all(np.isfinite(m.value) for m in history)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_rebasing_learner_trains_each_candidate_from_the_current_champion(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 64)
    registry = PolicyRegistry(home.tracking_uri)
    folder = learner_dir(home)

    def run(max_steps: int) -> tuple[LearnerState, list[np.ndarray]]:
        config = LearnerConfig(
            batch_size=16,
            gradient_steps=5,
            register_every=10,
            max_steps=max_steps,
            seed=0,
            rebase=True,
        )
        state = OnlineLearner(home, client, prefix, config, buffer_capacity=CAPACITY).run()
        assert state is not None and read_state(folder) == state
        return state, _actor_params(folder / state.zip)

    state, params = run(10)  # registers v2, then goes back to the champion, v1
    assert state.registered == [2] and state.source_version == 1
    v1 = _actor_params(trained.zip_path)
    v2 = _actor_params(registry.resolve("2").zip_path)
    assert _same(params, v1) and not _same(v2, v1)
    registry.set_alias("champion", 2)  # a promotion
    state, params = run(20)  # resumes from v1, registers v3, then goes to the new champion
    assert state.registered == [2, 3] and state.source_version == 2
    assert _same(params, v2)
    v3 = _actor_params(registry.resolve("3").zip_path)
    assert not _same(v3, v2) and not _same(v3, v1)


def _learning_rates(path: Path) -> set[float]:
    model = load_agent(str(path))
    optimizers = (model.actor.optimizer, model.critic.optimizer)
    return {float(g["lr"]) for o in optimizers for g in o.param_groups}


@pytest.mark.parametrize("rate", [None, 1e-4])
def test_learner_trains_at_its_own_or_the_given_learning_rate(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str], rate: float | None
) -> None:
    client, prefix = server_cp
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 64)
    config = LearnerConfig(
        batch_size=16,
        gradient_steps=5,
        register_every=10,
        max_steps=10,
        learning_rate=rate,
        rebase=False,  # the checkpoint is the trained candidate, not the reloaded champion
    )
    state = OnlineLearner(home, client, prefix, config, buffer_capacity=CAPACITY).run()
    assert state is not None
    own = load_agent(str(trained.zip_path)).lr_schedule(1.0)
    assert own != 1e-4  # else the case with a rate would prove nothing
    expected = own if rate is None else rate
    assert _learning_rates(learner_dir(home) / state.zip) == {expected}
    registry = PolicyRegistry(home.tracking_uri)
    registered = registry.resolve(str(state.registered[0]))
    assert load_agent(str(registered.zip_path)).lr_schedule(0.0) == expected  # kept on resume


def test_learner_waits_for_a_batch_of_transitions(
    tmp_path: Path,
    trained: TrainedHome,
    server_cp: tuple[redis.Redis, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, prefix = server_cp
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 3)
    config = LearnerConfig(
        batch_size=16, gradient_steps=5, checkpoint_every=5, max_steps=10, poll_seconds=0.05
    )
    learner = OnlineLearner(home, client, prefix, config, buffer_capacity=CAPACITY)
    done: list[object] = []
    caplog.set_level(logging.INFO, logger="agent.online")
    thread = threading.Thread(target=lambda: done.append(learner.run()))
    thread.start()
    end = time.monotonic() + DEADLINE
    while "waiting: 3 of 16 transitions" not in caplog.text:
        assert thread.is_alive() and time.monotonic() < end, "learner never waited"
        time.sleep(0.05)
    assert learner.steps == 0 and read_state(learner_dir(home)) is None
    _push(client, prefix, trained, 20, seed=1)
    thread.join(timeout=DEADLINE)
    assert not thread.is_alive()
    assert learner.steps == 10 and done and getattr(done[0], "steps", None) == 10


def _paced_run(
    trained: TrainedHome, folder: Path, client: redis.Redis, prefix: str
) -> tuple[list[int], list[np.ndarray]]:
    """A paced, seeded learner granted 7 then 12 steps; the steps it reported at each wait
    and its actor's weights."""
    home = _home(trained, folder)
    config = LearnerConfig(
        batch_size=16,
        gradient_steps=5,
        checkpoint_every=100,
        register_every=100,
        max_steps=12,
        seed=5,
        paced=True,
        pace_poll_seconds=0.01,
    )
    learner = OnlineLearner(home, client, prefix, config, buffer_capacity=CAPACITY)
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(learner.run()))
    reported = []
    grant_steps(client, prefix, 7)
    thread.start()
    end = time.monotonic() + DEADLINE
    while steps_done(client, prefix) != 7:
        assert thread.is_alive() and time.monotonic() < end, "paced learner never reported 7"
        time.sleep(0.01)
    time.sleep(0.2)  # it waits for a budget: no step beyond the one granted
    reported.append(learner.steps)
    grant_steps(client, prefix, 12)
    thread.join(timeout=DEADLINE)
    assert not thread.is_alive()
    reported.append(learner.steps)
    state = done[0]
    return reported, _actor_params(learner_dir(home) / state.zip)  # type: ignore[attr-defined]


def test_paced_seeded_learner_takes_the_granted_steps_and_replays_exactly(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    """``paced`` stops at the budget granted in Redis and says so; ``seed`` makes two learners
    on the same ring draw the same minibatches, so they end with the same weights."""
    client, prefix = server_cp
    _push(client, prefix, trained, 64)
    steps_a, weights_a = _paced_run(trained, tmp_path / "a", client, prefix)
    client.delete(*pace_keys(prefix))
    steps_b, weights_b = _paced_run(trained, tmp_path / "b", client, prefix)
    assert steps_a == steps_b == [7, 12]
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    start = _actor_params(trained.zip_path)
    assert any(not np.array_equal(a, b) for a, b in zip(start, weights_a, strict=True))


class FlakyRedis:
    """A real client whose first ``fails`` budget reads time out, as a stalled Redis does."""

    def __init__(self, client: redis.Redis, budget_key: str, fails: int) -> None:
        self._client = client
        self.budget_key = budget_key
        self.fails = fails

    def get(self, key: str) -> object:
        if key == self.budget_key and self.fails:
            self.fails -= 1
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return self._client.get(key)

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


def test_learner_waits_out_redis_timeouts_and_takes_its_steps(
    tmp_path: Path,
    trained: TrainedHome,
    server_cp: tuple[redis.Redis, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """agent.online's Redis outages: timed-out reads are logged once and retried, and the
    learner goes on to take the steps it was granted (it used to exit on the first)."""
    client, prefix = server_cp
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 64)
    grant_steps(client, prefix, 10)
    flaky = FlakyRedis(client, pace_keys(prefix)[0], fails=3)
    config = LearnerConfig(
        batch_size=16,
        gradient_steps=5,
        checkpoint_every=100,
        register_every=100,
        max_steps=10,
        poll_seconds=0.01,
        paced=True,
        pace_poll_seconds=0.01,
    )
    learner = OnlineLearner(home, flaky, prefix, config, buffer_capacity=CAPACITY)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="agent.online")
    state = learner.run()
    assert flaky.fails == 0 and learner.steps == 10
    assert state is not None and state.steps == 10
    assert caplog.text.count("Redis unavailable (Timeout reading from socket)") == 1
    assert "Redis is back after 3 retries, at step 0" in caplog.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pace_poll_seconds", 0.0, "learner pace_poll_seconds must be > 0, got 0.0"),
        ("seed", -1, "learner seed must be >= 0, got -1"),
        ("batch_size", 0, "learner batch_size must be >= 1, got 0"),
        ("gradient_steps", -1, "learner gradient_steps must be >= 1, got -1"),
        ("checkpoint_every", 0, "learner checkpoint_every must be >= 1, got 0"),
        ("max_steps", -5, "learner max_steps must be >= 0, got -5"),
        ("poll_seconds", 0.0, "learner poll_seconds must be > 0, got 0.0"),
        ("learning_rate", 0.0, r"learner learning_rate must be in \(0, 1\), got 0.0"),
        ("learning_rate", 1.5, r"learner learning_rate must be in \(0, 1\), got 1.5"),
    ],
)
def test_bad_learner_settings(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LearnerConfig(**{field: value})  # type: ignore[arg-type]


def test_bad_checkpoint_state_is_named(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"steps": 3}')
    with pytest.raises(ValueError, match=r"state\.json: not a learner checkpoint state"):
        read_state(tmp_path)


def _learn(home: Home, url: str, prefix: str, max_steps: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MARQUEE_REDIS_URL": url,
        "MARQUEE_REDIS_PREFIX": prefix,
        "MARQUEE_BUFFER_CAPACITY": str(CAPACITY),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-c", "from marquee.cli import main; main()", "--home", str(home.root)]
    cmd += ["learn", "--batch-size", "16", "--gradient-steps", "5", "--checkpoint-every", "10"]
    cmd += ["--register-every", "1000000", "--poll-seconds", "0.1", "--max-steps", str(max_steps)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_killed_learner_resumes_from_its_last_checkpoint(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    kw = client.connection_pool.connection_kwargs
    url = f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"
    home = _home(trained, tmp_path)
    _push(client, prefix, trained, 64)
    folder = learner_dir(home)
    first = _learn(home, url, prefix, max_steps=1_000_000)
    try:
        end = time.monotonic() + DEADLINE
        while (getattr(read_state(folder), "steps", 0)) < 30:
            assert first.poll() is None, f"learner exited: {first.communicate()[0][-2000:]}"
            assert time.monotonic() < end, "no checkpoint at step 30 in time"
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed = read_state(folder)
    assert killed is not None and killed.steps >= 30 and killed.steps % 10 == 0
    target = killed.steps + 10
    second = _learn(home, url, prefix, max_steps=target)
    out, _ = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, out[-2000:]
    assert f"resuming from step {killed.steps} " in out
    final = read_state(folder)
    assert final is not None and final.steps == target and final.run_id == killed.run_id
    steps = [
        m.step
        for m in MlflowClient(home.tracking_uri).get_metric_history(
            final.run_id, "online/critic_loss"
        )
    ]
    # one MLflow run; the second process continued at the checkpoint's step count
    assert {killed.steps + 5, target} <= set(steps) and max(steps) == target
    assert steps.count(5) == 1  # it did not start again from zero
    # `marquee learn` with no --learning-rate trains at the online default, not the model's own
    assert load_agent(str(trained.zip_path)).lr_schedule(1.0) != ONLINE_LEARNING_RATE
    assert _learning_rates(folder / final.zip) == {ONLINE_LEARNING_RATE}
