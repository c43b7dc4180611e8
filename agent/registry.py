"""Policy versions in MLflow's model registry: register, alias (champion/challenger), fetch.

The embedded default is a SQLite tracking file and an artifact folder in the Marquee home;
MLFLOW_TRACKING_URI points everything at a tracking server instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "marquee-policy"
_MODEL_CODE = str(Path(__file__).with_name("mlflow_model.py"))


class PolicyNotFoundError(LookupError):
    """No registered version matches the reference (alias, version number or 'latest')."""


@dataclass(frozen=True)
class PolicyVersion:
    """One registered policy version and where its SB3 zip lies on this machine."""

    name: str
    version: int
    run_id: str
    algo: str
    aliases: tuple[str, ...]
    zip_path: Path


def configure_tracking(tracking_uri: str, artifacts_dir: Path | None, experiment: str) -> str:
    """Point MLflow at ``tracking_uri`` and return the experiment id, creating the experiment
    with its artifacts under ``artifacts_dir`` (so nothing lands in the working directory)."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return str(exp.experiment_id)
    location = artifacts_dir.resolve().as_uri() if artifacts_dir is not None else None
    if artifacts_dir is not None:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
    exp_id = client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


class PolicyRegistry:
    """Registers and fetches policy versions of one registered model."""

    def __init__(self, tracking_uri: str, model_name: str = DEFAULT_MODEL_NAME) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def register(
        self, zip_path: Path, *, algo: str, aliases: tuple[str, ...] = (), run_id: str | None = None
    ) -> int:
        """Log ``zip_path`` as a pyfunc model in the active (or given) run, register it as a new
        version and set ``aliases`` on it. Returns the version number."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        run_ctx = mlflow.start_run(run_id=run_id) if run_id else None
        try:
            info = mlflow.pyfunc.log_model(
                name="policy",
                python_model=_MODEL_CODE,
                artifacts={"policy": str(zip_path)},
                model_config={"algo": algo},
                pip_requirements=["stable-baselines3", "torch"],
                registered_model_name=self.model_name,
            )
        finally:
            if run_ctx is not None:
                mlflow.end_run()
        version = int(info.registered_model_version)
        for alias in aliases:
            self.set_alias(alias, version)
        logger.info("registered %s version %d (%s)", self.model_name, version, ",".join(aliases))
        return version

    def set_alias(self, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def resolve(self, ref: str | int) -> PolicyVersion:
        """A version by alias ('champion'), number ('3' or 3) or 'latest'."""
        try:
            text = str(ref)
            if text == "latest":
                versions = self.client.search_model_versions(f"name='{self.model_name}'")
                if not versions:
                    raise PolicyNotFoundError(f"model {self.model_name!r} has no versions")
                mv = max(versions, key=lambda v: int(v.version))
            elif text.isdigit():
                mv = self.client.get_model_version(self.model_name, text)
            else:
                mv = self.client.get_model_version_by_alias(self.model_name, text)
        except MlflowException as exc:
            raise PolicyNotFoundError(
                f"no version {ref!r} of registered model {self.model_name!r}"
            ) from exc
        # the version's own artifact location, not a models:/ URI: MLflow resolves those with a
        # client on the default tracking URI, which creates ./mlflow.db wherever the process
        # runs (and two processes starting in one folder race to create its tables)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=self.client.get_model_version_download_uri(
                    self.model_name, str(mv.version)
                ),
                tracking_uri=self.tracking_uri,
            )
        )
        zips = sorted(local.rglob("*.zip"))
        if not zips:
            raise PolicyNotFoundError(f"version {mv.version} of {self.model_name!r} holds no zip")
        algo = _model_algo(local)
        return PolicyVersion(
            name=self.model_name,
            version=int(mv.version),
            run_id=str(mv.run_id),
            algo=algo,
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
            zip_path=zips[0],
        )

    def versions(self) -> list[dict[str, Any]]:
        """Every version with its aliases, newest first."""
        found = self.client.search_model_versions(f"name='{self.model_name}'")
        by_version: dict[int, list[str]] = {}
        if found:
            aliases = self.client.get_registered_model(self.model_name).aliases or {}
            for alias, version in aliases.items():
                by_version.setdefault(int(version), []).append(alias)
        rows = [
            {
                "version": int(v.version),
                "run_id": v.run_id,
                "aliases": by_version.get(int(v.version), []),
            }
            for v in found
        ]
        return sorted(rows, key=lambda r: -int(r["version"]))


def _model_algo(model_dir: Path) -> str:
    """The algo recorded in the logged model's config (MLmodel), 'ddpg' when absent."""
    mlmodel = model_dir / "MLmodel"
    if mlmodel.exists():
        for line in mlmodel.read_text().splitlines():
            if line.strip().startswith("algo:"):
                return line.split(":", 1)[1].strip()
    return "ddpg"
