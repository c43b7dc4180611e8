"""Run an experiment's trials as Ray tasks (local Ray, or a cluster at an address) or, without
Ray, one after another in this process; track them in MLflow as one parent run with a child
run per trial.

Ray is an optional extra (``pip install marquee[ray]``). The world travels to the workers
through Ray's object store (``ray.put``), so a cluster needs no shared folder. With the default
backend ("auto"), a local Ray that is missing or cannot start (Ray gives up after its own
start-up timeouts, e.g. on an overloaded machine) leaves the grid to this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow

from agent.registry import configure_tracking
from env.world import SimulationWorld

from .config import Experiment, Trial
from .trial import check_settings, run_trial

logger = logging.getLogger(__name__)


class RayUnavailableError(RuntimeError):
    """Ray was asked for but is not installed."""


class RayStartError(RayUnavailableError):
    """Ray is installed but could not start (or reach its cluster); the message is one line."""


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    metrics: dict[str, float]


def _run_ray(
    world: SimulationWorld,
    experiment: Experiment,
    address: str | None,
    num_cpus: int | None,
    on_trial: Callable[[TrialResult], None] | None,
) -> list[TrialResult]:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            "Ray is not installed: pip install 'marquee[ray]' (or run without --ray)"
        ) from exc
    started = False
    if not ray.is_initialized():
        _start_ray(ray, address, num_cpus)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(run_trial)
        world_ref = ray.put(world)
        trials = experiment.trials()
        pending = {
            remote.remote(world_ref, experiment.kind, t): t
            for t in trials  # type: ignore[attr-defined]
        }
        done: dict[str, TrialResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                trial = pending.pop(ref)
                done[trial.key] = TrialResult(trial, ray.get(ref))
                if on_trial is not None:
                    on_trial(done[trial.key])
        return [done[t.key] for t in trials]
    finally:
        if started:
            ray.shutdown()


def _start_ray(ray: Any, address: str | None, num_cpus: int | None) -> None:
    """``ray.init`` for local Ray or a cluster; a failure (Ray raises a bare ``Exception`` when
    its processes do not come up within its start-up timeouts) becomes a RayStartError, after
    stopping whatever part of Ray did start."""
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        init["address"] = address
    else:
        init["num_cpus"] = num_cpus
    try:
        ray.init(**init)
    except Exception as exc:  # Ray's start-up errors have no common type
        try:
            ray.shutdown()
        except Exception:  # best effort: Ray may be half up
            logger.debug("ray.shutdown after a failed start failed too", exc_info=True)
        where = f"the Ray cluster at {address}" if address else "local Ray"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RayStartError(f"{where} could not start: {reason}") from exc


def run_experiment(
    world: SimulationWorld,
    experiment: Experiment,
    *,
    backend: str = "auto",
    address: str | None = None,
    num_cpus: int | None = None,
    tracking_uri: str | None = None,
    artifacts_dir: Any = None,
    on_trial: Callable[[TrialResult], None] | None = None,
) -> tuple[list[TrialResult], str | None, str]:
    """Run every trial; returns the results (in trial order), the MLflow parent run id (None
    without tracking) and the backend used ("ray" or "in-process").

    ``backend``: "ray" (needs Ray; RayStartError when it cannot start), "in-process", or
    "auto" (local Ray when installed and it starts, else in this process, with a warning)."""
    for settings in experiment.configs.values():
        check_settings(experiment.kind, settings)
    use_ray = backend == "ray" or (backend == "auto" and ray_available())
    if backend == "auto" and not use_ray:
        logger.info("Ray is not installed: running the grid in this process")
    results: list[TrialResult] | None = None
    if use_ray:
        try:
            results = _run_ray(world, experiment, address, num_cpus, on_trial)
        except RayStartError as exc:
            if backend == "ray":
                raise
            logger.warning("%s; running the grid in this process instead", exc)
    used = "ray" if results is not None else "in-process"
    if results is None:
        results = []
        for trial in experiment.trials():
            results.append(TrialResult(trial, run_trial(world, experiment.kind, trial)))
            if on_trial is not None:
                on_trial(results[-1])
    parent = _track(experiment, results, used, tracking_uri, artifacts_dir)
    return results, parent, used


def _track(
    experiment: Experiment,
    results: list[TrialResult],
    backend: str,
    tracking_uri: str | None,
    artifacts_dir: Any,
) -> str | None:
    """One parent run for the experiment, a child run per trial (params, metrics)."""
    if tracking_uri is None:
        return None
    configure_tracking(tracking_uri, artifacts_dir, "marquee-experiments")
    with mlflow.start_run(run_name=experiment.name) as parent:
        mlflow.log_params(
            {"kind": experiment.kind, "backend": backend, "seeds": str(experiment.seeds)}
        )
        mlflow.set_tag("marquee.configs", ",".join(experiment.configs))
        for r in results:
            with mlflow.start_run(run_name=r.trial.key, nested=True):
                mlflow.log_params({**r.trial.settings, "config": r.trial.config})
                mlflow.log_param("seed", r.trial.seed)
                mlflow.log_metrics(r.metrics)
        return str(parent.info.run_id)
