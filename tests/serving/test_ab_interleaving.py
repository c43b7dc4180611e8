"""`marquee ab report` in interleave mode: choices credit the chosen item's team; per-user wins,
losses and ties; the preference with its CI; the verdict; the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from marquee.cli import app
from marquee.home import Home
from serving.ab import INTERLEAVE
from serving.ab_interleaving import build_interleaving_report
from serving.ab_report import Served
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation
from serving.schemas.feedback import FeedbackEvent, FeedbackType
from serving.wiring import reclog, service_redis, service_settings

SLATE = ("m1", "m2", "m3", "m4")
TEAMS = ("a", "b", "b", "a")


def _logs(p_b: float, users: int = 30, seed: int = 0) -> tuple[list[Served], list[FeedbackEvent]]:
    """``users`` users, 2 interleaved slates each; each slate gets one choice, of a B item
    with probability ``p_b``, and a skip of another item (which credits nobody)."""
    rng = np.random.default_rng(seed)
    served, events = [], []
    for u in range(users):
        for j in range(2):
            rid = f"r{u}-{j}"
            served.append(
                Served(rid, f"u{u}", INTERLEAVE, "ddpg-v6|ddpg-v7", SLATE, 1000.0 + j, TEAMS)
            )
            movie = "m2" if rng.random() < p_b else "m1"
            events.append(
                FeedbackEvent(
                    event_id=f"c-{rid}", type=FeedbackType.CLICK, recommendation_id=rid,
                    movie=movie,
                )
            )  # fmt: skip
            events.append(
                FeedbackEvent(
                    event_id=f"s-{rid}", type=FeedbackType.SKIPPED, recommendation_id=rid,
                    movie="m3",
                )
            )  # fmt: skip
    return served, events


def test_users_who_choose_b_items_make_b_the_preferred_version() -> None:
    served, events = _logs(p_b=0.8)
    report = build_interleaving_report(served, events, ("a", "b"))
    assert report.verdict == "promote", report.reason
    assert report.promote_arm == "b" and report.promote_version == 7
    pref = report.preference
    assert pref is not None and pref.wins_b + pref.wins_a + pref.ties == 30
    assert pref.wins_b > pref.wins_a and pref.preference.ci95_low > 0
    a, b = report.teams
    assert a.credited_choices + b.credited_choices == 60  # clicks credit; skips do not
    assert (a.versions, b.versions) == (["ddpg-v6"], ["ddpg-v7"])


def test_a_preferred_means_keep_and_no_difference_is_inconclusive() -> None:
    served, events = _logs(p_b=0.2)
    kept = build_interleaving_report(served, events, ("a", "b"))
    assert kept.verdict == "keep" and kept.promote_arm is None
    # every user chooses one A item and one B item: all ties
    tied = [
        e.model_copy(update={"movie": "m1" if e.recommendation_id.endswith("-0") else "m2"})  # type: ignore[union-attr]
        if e.type is FeedbackType.CLICK
        else e
        for e in events
    ]
    report = build_interleaving_report(served, tied, ("a", "b"))
    assert report.verdict == "inconclusive"
    assert report.preference is not None and report.preference.ties == 30


def test_events_naming_no_movie_of_the_slate_credit_nobody() -> None:
    served, events = _logs(p_b=0.8, users=3)
    stray = FeedbackEvent(
        event_id="x", type=FeedbackType.CLICK, recommendation_id="r0-0", movie="elsewhere"
    )
    report = build_interleaving_report(served, [*events, stray], ("a", "b"))
    assert report.uncredited_events == 1
    assert sum(t.credited_choices for t in report.teams) == 6


def _store(home: Home, served: list[Served], events: list[FeedbackEvent]) -> None:
    """Log the slates and store the feedback as the service would, in the home's Redis."""
    settings = service_settings(home)
    with service_redis(settings) as handle:
        log = reclog(handle.client, settings)
        for s in served:
            log.log(
                LoggedRecommendation(
                    s.id, s.user, s.arm, s.version, list(s.slate), np.ones(4, np.float32),
                    None, None, s.created, s.teams,
                )
            )  # fmt: skip
        RedisFeedbackStore(handle.client, settings.redis_prefix, log).submit(events)


def test_the_report_command_in_interleave_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arms = [{"name": "a", "policy": "champion"}, {"name": "b", "policy": "challenger"}]
    monkeypatch.setenv("MARQUEE_AB", json.dumps({"mode": "interleave", "arms": arms}))
    monkeypatch.delenv("MARQUEE_REDIS_URL", raising=False)
    home = Home(tmp_path / "home").ensure()
    served, events = _logs(p_b=0.8)
    _store(home, served, events)
    runner = CliRunner()
    args = ["--home", str(home.root), "ab", "report"]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["verdict"] == "promote" and report["promote_version"] == 7
    assert report["users_with_choices"] == 30
    assert runner.invoke(app, [*args, "--json"]).stdout == first.stdout  # same logs, same report
    text = runner.invoke(app, args)
    assert "online interleaving" in text.output and "verdict: promote" in text.output
    refused = runner.invoke(app, [*args, "--control", "a"])
    assert refused.exit_code == 2


def test_the_report_command_with_an_interleaved_arm_in_a_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Split mode, arm "b" interleaving against "a": the split's table covers both arms' users,
    the verdict (what --promote acts on) is the preference between b's two teams."""
    arms = [
        {"name": "a", "policy": "champion", "share": 0.7},
        {"name": "b", "policy": "challenger", "share": 0.3, "against": "a"},
    ]
    monkeypatch.setenv("MARQUEE_AB", json.dumps({"arms": arms}))
    monkeypatch.delenv("MARQUEE_REDIS_URL", raising=False)
    home = Home(tmp_path / "home").ensure()
    served, events = _logs(p_b=0.8)
    served = [Served(s.id, s.user, "b", s.version, s.slate, s.created, s.teams) for s in served]
    plain = [Served(f"p{u}", f"pu{u}", "a", "ddpg-v6", SLATE, 1000.0, ()) for u in range(60)]
    _store(home, [*served, *plain], events)
    runner = CliRunner()
    args = ["--home", str(home.root), "ab", "report"]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert {a["arm"]: a["users"] for a in report["arms"]} == {"a": 60, "b": 30}
    (test,) = report["interleaving"]
    assert test["arms"] == ["a", "b"] and test["slates"] == 60
    assert test["verdict"] == "promote" and test["promote_version"] == 7
    text = runner.invoke(app, args)
    assert "online interleaving" in text.output and "verdict: promote" in text.output
