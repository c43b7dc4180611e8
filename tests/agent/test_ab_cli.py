"""`marquee ab simulate` end to end on a temporary home: JSON, same seeds give the same report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from marquee.cli import app


def test_ab_simulate_json_reproduces(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    assert runner.invoke(app, [*home, "ingest", "movielens"]).exit_code == 0
    args = [*home, "ab", "simulate", "most-popular", "weakened:0.5:most-popular"]
    args += ["--users", "4", "--seeds", "2", "--max-steps", "5", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["a"]["policy"] == "most-popular"
    assert report["b"]["policy"] == "most-popular-weakened-0.5"
    assert report["difference"]["n"] == 8
    assert [row["lift"] for row in report["power"]] == [0.02, 0.05, 0.1]
    assert runner.invoke(app, args).stdout == first.stdout
    table = runner.invoke(app, args[:-1])
    assert "paired t p =" in table.output and "users needed" in table.output
    bad = runner.invoke(app, [*home, "ab", "simulate", "most-popular", "weakened:2:most-popular"])
    assert bad.exit_code == 2
