"""`marquee train` and `marquee evaluate` end to end on a temporary home."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from marquee.cli import app


def test_train_then_evaluate(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    assert runner.invoke(app, [*home, "ingest", "movielens"]).exit_code == 0
    result = runner.invoke(app, [*home, "train", "--timesteps", "300", "--alias", "champion"])
    assert result.exit_code == 0, result.output
    assert "registered version 1" in result.output
    plot = tmp_path / "eval.png"
    result = runner.invoke(
        app,
        [
            *home,
            "evaluate",
            "most-popular",
            "champion",
            "--seeds",
            "2",
            "--episodes",
            "2",
            "--json",
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)  # progress goes to stderr: stdout is pure JSON
    assert [r["policy"] for r in reports] == ["most-popular", "ddpg-v1"]
    assert {r["estimator"] for r in reports} == {"stratified"}
    assert plot.stat().st_size > 0

    evaluate = [*home, "evaluate", "most-popular", "champion", "--seeds", "2", "--episodes", "2"]
    result = runner.invoke(app, [*evaluate, "--json", "--against", "most-popular"])
    assert result.exit_code == 0, result.output
    both = json.loads(result.stdout)
    assert [r["policy"] for r in both["policies"]] == ["most-popular", "ddpg-v1"]
    (paired,) = both["paired"]
    assert (paired["policy"], paired["reference"], paired["n"]) == (
        "ddpg-v1",
        "most-popular",
        2,
    )
    assert paired["ci95_low"] <= paired["estimate"] <= paired["ci95_high"]
    result = runner.invoke(app, [*evaluate, "--against", "ease"])
    assert result.exit_code == 2
    assert "--against 'ease' is not among the policies evaluated" in _text(result.output)
    result = runner.invoke(app, [*evaluate, "--json", "--estimator", "simple"])
    assert result.exit_code == 0, result.output
    simple = json.loads(result.stdout)
    assert [r["estimator"] for r in simple] == ["simple", "simple"]
    assert all(r["seed_returns"] == r["played_seed_returns"] for r in simple)
    result = runner.invoke(app, [*evaluate, "--estimator", "mean"])
    assert result.exit_code == 2
    assert "--estimator 'mean': use one of stratified, simple" in _text(result.output)


def _text(output: str) -> str:
    """The CLI's message with rich's box drawing and line wrapping removed."""
    return " ".join(output.replace("│", " ").split())


def test_bad_policy_and_algo_names(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    result = runner.invoke(app, [*home, "train", "--algo", "ppo"])
    assert result.exit_code == 2
    assert "algo must be ddpg or td3" in _text(result.output)
    result = runner.invoke(app, [*home, "train"])
    assert result.exit_code == 2
    assert "run `marquee ingest movielens` first" in _text(result.output)
