"""Experiment grids: parsing, in-process and local-Ray runs, MLflow runs, the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from agent import sweep_cli
from agent.sweeps.config import ExperimentConfigError, parse_experiment
from agent.sweeps.report import write_report
from agent.sweeps.runner import RayStartError, run_experiment
from env.world import SimulationWorld
from marquee.cli import app

SMALL = """
name = "small"
seeds = [0, 1]
[base]
users = 3
max_steps = 5
[[configs]]
name = "popular"
policy = "most-popular"
[[configs]]
name = "weak"
policy = "weakened:0.5:most-popular"
"""


def test_grid_and_named_configs_multiply_and_errors_name_the_file() -> None:
    exp = parse_experiment(
        'kind = "simulate"\nseeds = [0, 1, 2]\n[base]\nusers = 5\n[grid]\nslate_size = [5, 10]\n'
        '[[configs]]\nname = "a"\npolicy = "graph"\n[[configs]]\nname = "b"\n',
        "grid.toml",
    )
    assert list(exp.configs) == [
        "a/slate_size=5",
        "a/slate_size=10",
        "b/slate_size=5",
        "b/slate_size=10",
    ]
    assert exp.configs["a/slate_size=10"] == {"users": 5, "policy": "graph", "slate_size": 10}
    assert len(exp.trials()) == 12
    with pytest.raises(ExperimentConfigError, match=r"bad\.toml: kind must be"):
        parse_experiment('kind = "fly"', "bad.toml")
    with pytest.raises(ExperimentConfigError, match=r"bad\.toml: not valid TOML"):
        parse_experiment("seeds = [", "bad.toml")
    with pytest.raises(ExperimentConfigError, match=r"grid\.gamma must be a non-empty list"):
        parse_experiment("[grid]\ngamma = 0.5", "bad.toml")


def test_in_process_run_tracks_parent_and_child_runs_and_writes_the_report(
    ml_world: SimulationWorld, tmp_path: Path
) -> None:
    exp = parse_experiment(SMALL)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results, parent, used = run_experiment(
        ml_world, exp, backend="in-process", tracking_uri=uri, artifacts_dir=tmp_path / "art"
    )
    assert used == "in-process" and len(results) == 4
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_run(parent).info.experiment_id])  # type: ignore[arg-type]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(children) == 4
    assert {(r.data.params["config"], r.data.params["seed"]) for r in children} == {
        ("popular", "0"),
        ("popular", "1"),
        ("weak", "0"),
        ("weak", "1"),
    }
    files = write_report(exp, results, tmp_path / "report", backend=used, parent_run=parent)
    page = files["html"].read_text()
    assert "data:image/png;base64," in page and "popular" in page
    assert "src='http" not in page and "<script" not in page  # self-contained
    assert files["mean_return"].read_bytes()[:4] == b"\x89PNG"
    again, _, _ = run_experiment(ml_world, exp, backend="in-process")
    strip = lambda rs: [{k: v for k, v in r.metrics.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(again) == strip(results)  # same seeds, same figures


def test_unknown_settings_are_refused(ml_world: SimulationWorld) -> None:
    exp = parse_experiment('[base]\nslate_szie = 5\n[[configs]]\npolicy = "graph"\n')
    with pytest.raises(ValueError, match="unknown setting 'slate_szie'"):
        run_experiment(ml_world, exp, backend="in-process")


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (pip install 'marquee[ray]'); the dev extra installs it",
)
def test_two_configs_by_two_seeds_on_local_ray_match_the_in_process_run(
    ml_world: SimulationWorld,
) -> None:
    exp = parse_experiment(SMALL)
    ray_results, _, used = run_experiment(ml_world, exp, backend="ray", num_cpus=2)
    assert used == "ray"
    local, _, _ = run_experiment(ml_world, exp, backend="in-process")
    assert [r.trial.key for r in ray_results] == [r.trial.key for r in local]
    for a, b in zip(ray_results, local, strict=True):
        assert a.metrics["mean_return"] == b.metrics["mean_return"]
        assert a.metrics["coverage"] == b.metrics["coverage"]


RAY_TIMEOUT = (
    "The current node timed out during startup. This could happen because some of the raylet "
    "failed to startup or the GCS has become overloaded."
)  # what ray.init raised on this machine under load (Ray 2.60, its 30 s raylet wait)


@pytest.fixture
def ray_cannot_start(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ray.init fails as it does when local Ray does not come up in time; records the calls."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'marquee[ray]')")
    calls: list[str] = []

    def init(**_: object) -> None:
        calls.append("init")
        raise Exception(RAY_TIMEOUT)  # Ray raises a bare Exception here

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    return calls


def test_auto_falls_back_to_in_process_when_local_ray_cannot_start(
    ml_world: SimulationWorld, ray_cannot_start: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    exp = parse_experiment(SMALL)
    seen: list[str] = []
    results, _, used = run_experiment(
        ml_world, exp, backend="auto", on_trial=lambda r: seen.append(r.trial.key)
    )
    assert used == "in-process"
    assert ray_cannot_start == ["init", "shutdown"]  # what did start of Ray is stopped
    assert seen == [t.key for t in exp.trials()]  # every trial ran, once
    local, _, _ = run_experiment(ml_world, exp, backend="in-process")
    assert [r.metrics["mean_return"] for r in results] == [
        r.metrics["mean_return"] for r in local
    ]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        f"local Ray could not start: {RAY_TIMEOUT}; running the grid in this process instead"
    ]


def test_an_explicit_ray_run_that_cannot_start_is_one_clear_error(
    ml_world: SimulationWorld, ray_cannot_start: list[str]
) -> None:
    exp = parse_experiment(SMALL)
    with pytest.raises(RayStartError, match=r"^local Ray could not start: The current node"):
        run_experiment(ml_world, exp, backend="ray")
    cluster = r"^the Ray cluster at 10\.0\.0\.9:6379 could not start"
    with pytest.raises(RayStartError, match=cluster):
        run_experiment(ml_world, exp, backend="ray", address="10.0.0.9:6379")


def test_the_cli_reports_a_ray_that_cannot_start_in_one_line_or_runs_without_it(
    ml_world: SimulationWorld,
    tmp_path: Path,
    ray_cannot_start: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sweep_cli, "_world", lambda home: ml_world)  # the same ingested world
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    result = runner.invoke(app, [*home, "experiment", str(config), "--ray"])
    assert result.exit_code == 1
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert f"error: local Ray could not start: {RAY_TIMEOUT}" in text
    assert "Traceback" not in result.output
    result = runner.invoke(app, [*home, "experiment", str(config)])
    assert result.exit_code == 0, result.output
    assert "small: 4 trials (in-process)" in " ".join(result.output.split())
