"""The closed loop at CI scale: the real ``marquee serve`` and ``marquee learn`` on the embedded
Redis, simulated people over HTTP, at least one promotion decision, and the files it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from experiments.online_loop.loop import LoopArgs, run
from marquee.home import Home


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("loop")
    args = LoopArgs(
        out=out,
        movies=200,
        users=80,
        champion_steps=200,
        interactions=1000,
        users_per_round=50,
        decide_every=2,
        min_slates_per_arm=60,
        learner_register_every=50,
        seed=3,
    )
    return out, run(args)


def test_the_loop_serves_the_interactions_and_decides_at_least_once(
    loop: tuple[Path, dict[str, object]],
) -> None:
    out, summary = loop
    assert 1000 <= summary["interactions"] <= 4000  # type: ignore[operator]
    per_arm = summary["per_arm"]
    assert isinstance(per_arm, dict)
    assert per_arm["champion"]["slates"] > 100 and per_arm["challenger"]["slates"] > 100
    # feedback went in both ways: the API and Plex's webhook format (stored, not refused)
    feedback = summary["feedback"]
    assert isinstance(feedback, dict)
    assert feedback["http_events"] > 500
    assert feedback["webhook_deliveries"] > 20
    assert feedback["webhook_stored"] >= 0.9 * feedback["webhook_deliveries"]
    decisions = summary["decisions"]
    assert isinstance(decisions, list) and decisions
    d = decisions[0]
    assert d["action"] in ("promote", "keep", "rollback")
    assert d["challenger_version"] != d["champion_version"]
    online = d["online"]
    assert online["champion"]["users"] > 1 and online["challenger"]["users"] > 1
    # the decision is in MLflow, with its evidence, in the loop's own home
    client = MlflowClient(tracking_uri=Home(out / "home").tracking_uri)
    run_ = client.get_run(d["mlflow_run"])
    assert run_.data.params["action"] == d["action"]
    assert [a.path for a in client.list_artifacts(d["mlflow_run"])] == ["decision.json"]


def test_the_loop_writes_its_files(loop: tuple[Path, dict[str, object]]) -> None:
    out, summary = loop
    written = json.loads((out / "loop.json").read_text())
    assert written["interactions"] == summary["interactions"]
    assert {c["arm"] for c in written["curve"]} == {"champion", "challenger"}
    with (out / "slates.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["interactions"]
    assert {r["arm"] for r in rows} == {"champion", "challenger"}
    png = (out / "online_loop.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    assert (out / "logs" / "serve.log").exists() and (out / "logs" / "learn.log").exists()


def test_simulated_people_follow_the_simulators_reward(
    loop: tuple[Path, dict[str, object]],
) -> None:
    """A served slate's reward is the simulator's: (rating - 3) / 2 for a pick, -0.1 else."""
    out, _ = loop
    with (out / "slates.csv").open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["accepted"] == "True":
            assert float(r["reward"]) == pytest.approx((float(r["rating"]) - 3.0) / 2.0)
        else:
            assert float(r["reward"]) == pytest.approx(-0.1)
