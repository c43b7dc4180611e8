"""The online learner: gradient steps on real feedback from the Redis replay ring.

Agent code: it trains, checkpoints and registers policies; ``marquee learn`` (serving.cli)
only parses options and opens Redis.

It loads a registered policy (the champion by default), points the SB3 model's
``replay_buffer`` at the RedisReplayBuffer the service fills, and calls SB3's own
``model.train(gradient_steps=..., batch_size=...)`` in chunks: no training loop of its own.
While the ring holds fewer than ``batch_size`` transitions it polls. Every
``checkpoint_every`` steps it writes a checkpoint to ``home.models_dir / "learner"`` and logs
it (and the losses) to MLflow; every ``register_every`` steps it registers the policy as a new
version with the ``challenger`` alias. Redis is the only thing it shares with the service.

Reproducible runs: ``seed`` seeds the minibatch sampling and torch (SB3's set_random_seed,
reseeded with seed + steps on a resume), and ``paced`` trains only up to the step budget a
driver grants in Redis (``grant_steps``), reporting the steps done (``steps_done``) once it
waits again: the online loop grants steps per interaction served and waits, so the ring holds
the same transitions at every gradient step of a replay, whatever the machine's speed.

Learning rate: ``learning_rate`` sets a constant one for the actor and the critic, by default
``ONLINE_LEARNING_RATE`` (1e-4); None keeps the loaded model's own (what it was trained with
in the simulator, 3e-4 by default). On logged traffic the smaller one slows the decline of
later candidates: trained on one closed-loop run's ring from the weak champion, the
simulator's mean return of the candidates fell from 2.97 (5K steps) to 2.77 (40K) at 3e-4,
and from 2.99 to 2.93 at 1e-4 (README, issue 20).

Rebasing (``rebase``, on by default): once it registered a candidate the learner reloads the
``source`` version (resolved again: after a promotion, the new champion), so every candidate
is the current champion plus ``register_every`` steps on the ring as it is then; with
``rebase=False`` each candidate continues from the previous one, so the n-th has n x
``register_every`` steps on the same logs. Why the default: on logged traffic the candidates
peak early and then degrade (above), and a promoted version should be what the next
candidates improve on. Both defaults are the configuration every recent closed-loop figure
used (README, "The online loop's figures": the twelve-seed live rise is with both).

Redis outages: the learner is a batch job, so it waits for Redis rather than failing fast as
the service must; ``marquee learn`` connects with a ``REDIS_TIMEOUT_SECONDS`` socket timeout
(the service's 1 s made a learner die on a loaded two-core machine when one read stalled), and
a timeout or refused connection during a step is logged once and retried with a backoff
(``poll_seconds`` doubling up to ``MAX_OUTAGE_WAIT_SECONDS``) until Redis answers or the
learner is stopped. A failure inside ``model.train`` may come after some of its gradient
steps were applied; those are not counted, so a paced replay across an outage is not exact.

Checkpoints: ``model-<steps>.zip`` is written under a temporary name and renamed, then
``state.json`` (steps, zip, MLflow run, source version) is replaced atomically to point at it,
then older zips are removed; a learner killed at any moment restarts from the last complete
checkpoint, with its step count and MLflow run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis

from agent.buffers.redis_ring import RingKeys, ring_prefix
from marquee.home import Home

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
REDIS_TIMEOUT_SECONDS = 30.0  # a learner's socket timeout (module doc: Redis outages)
MAX_OUTAGE_WAIT_SECONDS = 60.0
ONLINE_LEARNING_RATE = 1e-4  # the learner's default constant rate (module doc)


@dataclass(frozen=True)
class LearnerConfig:
    """What the learner trains from and how often it checkpoints and registers."""

    source: str = "champion"
    batch_size: int = 128
    gradient_steps: int = 50  # per model.train call
    checkpoint_every: int = 500
    register_every: int = 5_000
    alias: str = "challenger"
    max_steps: int | None = None
    poll_seconds: float = 5.0
    experiment: str = "marquee-online"
    fresh: bool = False  # ignore an existing checkpoint and start from ``source``
    seed: int | None = None  # minibatches and torch (module doc); None: fresh entropy
    paced: bool = False  # train only up to the budget granted in Redis (module doc)
    pace_poll_seconds: float = 0.05
    learning_rate: float | None = ONLINE_LEARNING_RATE  # None: the model's own (module doc)
    rebase: bool = True  # each candidate from the current source, not the last (module doc)

    def __post_init__(self) -> None:
        for name in ("batch_size", "gradient_steps", "checkpoint_every", "register_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"learner {name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"learner max_steps must be >= 0, got {self.max_steps}")
        if self.poll_seconds <= 0:
            raise ValueError(f"learner poll_seconds must be > 0, got {self.poll_seconds}")
        if self.pace_poll_seconds <= 0:
            raise ValueError(f"learner pace_poll_seconds must be > 0, got {self.pace_poll_seconds}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"learner seed must be >= 0, got {self.seed}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ValueError(f"learner learning_rate must be in (0, 1), got {self.learning_rate}")


@dataclass(frozen=True)
class LearnerState:
    """The content of ``state.json``: the last complete checkpoint."""

    steps: int
    zip: str
    algo: str
    run_id: str
    source_version: int
    registered: list[int]


def pace_keys(prefix: str) -> tuple[str, str]:
    """Redis keys of a paced learner: (steps granted, steps done); one hash tag."""
    tag = "{" + prefix + ":learner}"
    return f"{tag}:budget", f"{tag}:done"


def grant_steps(client: redis.Redis, prefix: str, total: int) -> None:
    """Allow a paced learner to train up to ``total`` gradient steps in all."""
    client.set(pace_keys(prefix)[0], int(total))


def steps_done(client: redis.Redis, prefix: str) -> int | None:
    """The steps a paced learner reported when it last waited for a budget (None: never)."""
    raw = client.get(pace_keys(prefix)[1])
    return None if raw is None else int(raw)  # type: ignore[arg-type]


def learner_dir(home: Home) -> Path:
    return home.models_dir / "learner"


def read_state(folder: Path) -> LearnerState | None:
    """The last checkpoint's state, or None when there is none."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return LearnerState(**raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a learner checkpoint state ({exc})") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def set_learning_rate(model: Any, rate: float) -> None:
    """A constant learning rate from now on: SB3's own schedule type (saved with the model,
    so a resumed checkpoint keeps it), applied by ``train`` to every optimizer it steps."""
    from stable_baselines3.common.utils import ConstantSchedule

    model.learning_rate = rate
    model.lr_schedule = ConstantSchedule(rate)


class OnlineLearner:
    """Trains one policy from the Redis ring (module doc). ``run`` until ``max_steps`` or stop."""

    def __init__(
        self,
        home: Home,
        client: redis.Redis,
        prefix: str,
        config: LearnerConfig,
        *,
        buffer_capacity: int = 100_000,
        model_name: str | None = None,
    ) -> None:
        self.home = home
        self.client = client
        self.prefix = prefix
        self.buffer_prefix = ring_prefix(prefix)
        self.config = config
        self.buffer_capacity = buffer_capacity
        self.model_name = model_name
        self.folder = learner_dir(home)
        self.steps = 0
        self.resumed_from: int | None = None

    def _registry(self) -> Any:
        from agent.registry import DEFAULT_MODEL_NAME, PolicyRegistry

        return PolicyRegistry(self.home.tracking_uri, self.model_name or DEFAULT_MODEL_NAME)

    def _load(self, registry: Any) -> tuple[Any, LearnerState | None, int, str]:
        """(model, previous state, source version, algo): the checkpoint when there is one
        (unless ``fresh``), else the registered ``source`` version."""
        from agent.factory import load_agent

        state = None if self.config.fresh else read_state(self.folder)
        if state is not None:
            model = load_agent(str(self.folder / state.zip), algo=state.algo)
            log.info("resuming from step %d (%s)", state.steps, self.folder / state.zip)
            return model, state, state.source_version, state.algo
        model, pv = self._load_source(registry)
        log.info("starting from %s version %d (%s)", pv.name, pv.version, self.config.source)
        return model, None, pv.version, pv.algo

    def _load_source(self, registry: Any) -> tuple[Any, Any]:
        """(model, registered version): the ``source`` alias as it resolves now."""
        import mlflow

        from agent.factory import load_agent

        mlflow.set_tracking_uri(registry.tracking_uri)  # resolve downloads via the global URI
        pv = registry.resolve(self.config.source)
        return load_agent(str(pv.zip_path), algo=pv.algo), pv

    def _buffer(self, model: Any) -> Any:
        from agent.buffers.redis_buffer import RedisReplayBuffer

        stored = RingKeys(self.buffer_prefix).stored_capacity(self.client)
        capacity = stored if stored is not None else self.buffer_capacity
        return RedisReplayBuffer(
            capacity,
            model.observation_space,
            model.action_space,
            device="cpu",
            client=self.client,
            prefix=self.buffer_prefix,
        )

    def _checkpoint(self, model: Any, state: LearnerState) -> Path:
        """Save the model, then point state.json at it, then drop older zips."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / state.zip
        tmp = self.folder / f"{final.stem}.tmp.zip"
        model.save(tmp)
        tmp.replace(final)
        _write_json(self.folder / STATE_FILE, asdict(state))
        for old in self.folder.glob("model-*.zip"):
            if old.name != state.zip:
                old.unlink(missing_ok=True)
        log.info("learner checkpoint at step %d: %s", state.steps, final)
        return final

    def run(self, stop: threading.Event | None = None) -> LearnerState | None:
        """Train until ``max_steps`` (or ``stop`` is set); returns the last checkpoint state."""
        import mlflow

        from agent.factory import set_torch_threads
        from agent.registry import configure_tracking

        stop = stop or threading.Event()
        cfg = self.config
        set_torch_threads(1)
        registry = self._registry()
        model, state, source_version, algo = self._load(registry)
        self.steps = state.steps if state is not None else 0
        self.resumed_from = state.steps if state is not None else None
        registered = list(state.registered) if state is not None else []
        self._prepare(model)
        budget_key, done_key = pace_keys(self.prefix)
        configure_tracking(self.home.tracking_uri, self.home.artifacts_dir, cfg.experiment)
        run_id = state.run_id if state is not None else None
        last = state
        waiting = False
        with mlflow.start_run(run_id=run_id, run_name=None if run_id else "learner") as run:
            if run_id is None:
                mlflow.log_params({**asdict(cfg), "source_version": source_version})
            outage = 0
            while cfg.max_steps is None or self.steps < cfg.max_steps:
                if stop.is_set():
                    break
                if outage:  # Redis timed out or refused: wait, then try again (module doc)
                    stop.wait(min(cfg.poll_seconds * 2 ** (outage - 1), MAX_OUTAGE_WAIT_SECONDS))
                allowed: int | None = None
                pause: float | None = None  # a wait instead of a step: no budget, or no data
                try:
                    if cfg.paced:
                        raw = self.client.get(budget_key)
                        allowed = 0 if raw is None else int(raw)  # type: ignore[arg-type]
                    if allowed is not None and self.steps >= allowed:
                        self.client.set(done_key, self.steps)
                        pause = cfg.pace_poll_seconds
                    elif (size := model.replay_buffer.size()) < cfg.batch_size:
                        if not waiting:
                            log.info("waiting: %d of %d transitions", size, cfg.batch_size)
                            waiting = True
                        pause = cfg.poll_seconds
                    else:
                        waiting = False
                        n = min(
                            cfg.gradient_steps,
                            cfg.checkpoint_every - self.steps % cfg.checkpoint_every,
                            cfg.register_every - self.steps % cfg.register_every,
                        )
                        if cfg.max_steps is not None:
                            n = min(n, cfg.max_steps - self.steps)
                        if allowed is not None:
                            n = min(n, allowed - self.steps)
                        t0 = time.perf_counter()
                        model.train(gradient_steps=n, batch_size=cfg.batch_size)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    outage += 1
                    if outage == 1:
                        log.warning("Redis unavailable (%s): retrying, at step %d", exc, self.steps)
                    continue
                if outage:
                    log.info("Redis is back after %d retries, at step %d", outage, self.steps)
                    outage = 0
                if pause is not None:
                    stop.wait(pause)
                    continue
                self.steps += n
                values = model.logger.name_to_value
                metrics = {
                    f"online/{k.split('/', 1)[1]}": float(values[k])
                    for k in ("train/actor_loss", "train/critic_loss")
                    if k in values
                }
                metrics["online/buffer_size"] = float(size)
                metrics["online/steps_per_s"] = n / max(time.perf_counter() - t0, 1e-9)
                mlflow.log_metrics(metrics, step=self.steps)
                at_ckpt = self.steps % cfg.checkpoint_every == 0
                at_reg = self.steps % cfg.register_every == 0
                done = cfg.max_steps is not None and self.steps >= cfg.max_steps
                if at_ckpt or at_reg or done:
                    last = self._save(model, algo, run.info.run_id, source_version, registered)
                if at_reg:
                    assert last is not None
                    version = int(
                        registry.register(self.folder / last.zip, algo=algo, aliases=(cfg.alias,))
                    )
                    registered.append(version)
                    last = replace(last, registered=list(registered))
                    _write_json(self.folder / STATE_FILE, asdict(last))
                    log.info(
                        "registered version %d as %r at step %d", version, cfg.alias, self.steps
                    )
                    if cfg.rebase:
                        model, source_version = self._rebase(registry)
                        last = self._save(model, algo, run.info.run_id, source_version, registered)
            if last is None or last.steps != self.steps:  # stopped between checkpoints
                last = self._save(model, algo, run.info.run_id, source_version, registered)
        return last

    def _prepare(self, model: Any) -> None:
        """Point a loaded model at the ring, set its learning rate, seed it (module doc) and
        give it a logger with no output (``run`` reads the losses back from it)."""
        from stable_baselines3.common.logger import Logger

        model.replay_buffer = self._buffer(model)
        model.set_logger(Logger(folder=None, output_formats=[]))
        if self.config.learning_rate is not None:
            set_learning_rate(model, self.config.learning_rate)
        if self.config.seed is not None:  # minibatch indices come from numpy's global generator
            model.set_random_seed(self.config.seed + self.steps)

    def _rebase(self, registry: Any) -> tuple[Any, int]:
        """(model, version): the ``source`` version as it is registered now, ready to train;
        its checkpoint replaces the candidate's, so a restart continues from it."""
        model, pv = self._load_source(registry)
        log.info("rebasing on %s version %d at step %d", pv.name, pv.version, self.steps)
        self._prepare(model)
        return model, int(pv.version)

    def _save(
        self, model: Any, algo: str, run_id: str, source_version: int, registered: list[int]
    ) -> LearnerState:
        import mlflow

        state = LearnerState(
            steps=self.steps,
            zip=f"model-{self.steps:09d}.zip",
            algo=algo,
            run_id=run_id,
            source_version=source_version,
            registered=list(registered),
        )
        path = self._checkpoint(model, state)
        mlflow.log_artifact(str(path), artifact_path="learner")
        return state
