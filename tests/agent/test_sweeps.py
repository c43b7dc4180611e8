"""Experiment grids: parsing, in-process and local-Ray runs, MLflow runs, the report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from mlflow import MlflowClient

from agent.sweeps.config import ExperimentConfigError, parse_experiment
from agent.sweeps.report import write_report
from agent.sweeps.runner import run_experiment
from env.world import SimulationWorld

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
