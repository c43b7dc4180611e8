"""`marquee ab report` end to end: the home's embedded Redis, MARQUEE_AB, --json, --since,
--promote moving the registry alias."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.registry import PolicyRegistry, configure_tracking
from marquee.cli import app
from marquee.home import Home
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation
from serving.schemas.feedback import FeedbackEvent, FeedbackType
from serving.wiring import reclog, service_redis, service_settings

AB = json.dumps(
    {
        "salt": "s",
        "arms": [
            {"name": "a", "policy": "champion", "share": 0.5},
            {"name": "b", "policy": "challenger", "share": 0.5},
        ],
    }
)


def _write_logs(home: Home) -> None:
    """40 users per arm, 2 slates each; arm b's slates are liked far more often."""
    rng = np.random.default_rng(0)
    settings = service_settings(home)
    with service_redis(settings) as handle:
        log = reclog(handle.client, settings)
        store = RedisFeedbackStore(handle.client, settings.redis_prefix, log)
        events = []
        for arm, version, rate in (("a", "ddpg-v1", 0.2), ("b", "ddpg-v2", 0.7)):
            for u in range(40):
                for j in range(2):
                    rec_id = f"{arm}-{u}-{j}"
                    log.log(
                        LoggedRecommendation(
                            rec_id,
                            f"{arm}{u}",
                            arm,
                            version,
                            ["1", "2"],
                            np.ones(2, np.float32),
                            None,
                            None,
                            1_000.0 + j,
                        )
                    )
                    if rng.random() < rate:
                        events.append(
                            FeedbackEvent(
                                event_id=f"e-{rec_id}",
                                type=FeedbackType.WATCHED,
                                completion=100.0,
                                recommendation_id=rec_id,
                            )
                        )
        store.submit(events)


def test_report_json_since_and_promote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARQUEE_AB", AB)
    monkeypatch.delenv("MARQUEE_REDIS_URL", raising=False)
    home = Home(tmp_path / "home").ensure()
    _write_logs(home)
    runner = CliRunner()
    args = ["--home", str(home.root), "ab", "report"]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["srm"]["ok"] and report["verdict"] == "promote"
    assert report["promote_arm"] == "b" and report["promote_version"] == 2
    assert runner.invoke(app, [*args, "--json"]).stdout == first.stdout  # same logs, same report
    later = json.loads(runner.invoke(app, [*args, "--json", "--since", "1000.5"]).stdout)
    assert [a["slates"] for a in later["arms"]] == [40, 40]
    text = runner.invoke(app, args)
    assert "verdict: promote" in text.output and "SRM:" in text.output
    # --promote moves the alias onto the winning arm's version
    zip_path = tmp_path / "policy.zip"
    zip_path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: the registry stores it
    configure_tracking(home.tracking_uri, home.artifacts_dir, "marquee")
    registry = PolicyRegistry(home.tracking_uri)
    registry.register(zip_path, algo="ddpg", aliases=("champion",))
    registry.register(zip_path, algo="ddpg", aliases=("challenger",))
    promoted = runner.invoke(app, [*args, "--promote"])
    assert promoted.exit_code == 0, promoted.output
    assert "champion -> version 2" in promoted.output
    assert registry.resolve("champion").version == 2
