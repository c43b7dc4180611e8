"""`marquee ab report`'s analysis: reading the service's Redis logs, joining feedback, SRM
stop, Welch verdicts, and the same logs giving the same report."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import redis

from serving.ab_report import (
    Served,
    build_report,
    join_feedback,
    read_feedback,
    read_feedback_stored,
    read_served,
)
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation, RecLog
from serving.schemas.feedback import FeedbackEvent, FeedbackType

SHARES = {"a": 0.5, "b": 0.5}


def _served(n_a: int, n_b: int, slates_per_user: int = 3) -> list[Served]:
    out = []
    for arm, n, version in (("a", n_a, "ddpg-v1"), ("b", n_b, "ddpg-v2")):
        for u in range(n):
            for j in range(slates_per_user):
                out.append(
                    Served(
                        f"{arm}{u}-{j}", f"{arm}-user{u}", arm, version, ("m1", "m2"), 1000.0 + j
                    )
                )
    return out


def _events(served: list[Served], rate: dict[str, float], seed: int = 0) -> list[FeedbackEvent]:
    rng = np.random.default_rng(seed)
    events = []
    for s in served:
        if rng.random() < rate[s.arm]:
            events.append(
                FeedbackEvent(
                    event_id=f"e-{s.id}",
                    type=FeedbackType.RATED,
                    recommendation_id=s.id,
                    rating=5.0,
                )
            )
        elif rng.random() < 0.3:
            events.append(
                FeedbackEvent(
                    event_id=f"s-{s.id}", type=FeedbackType.SKIPPED, recommendation_id=s.id
                )
            )
    return events


def test_a_better_arm_is_promoted_with_its_version() -> None:
    served = _served(60, 60)
    report = build_report(served, _events(served, {"a": 0.2, "b": 0.6}), SHARES)
    assert report.srm.ok
    assert report.verdict == "promote", report.reason
    assert report.promote_arm == "b" and report.promote_version == 2
    arms = {a.arm: a for a in report.arms}
    assert arms["b"].acceptance > arms["a"].acceptance
    assert arms["a"].users == 60 and arms["a"].slates == 180
    low, high = arms["b"].mean_reward_ci95
    assert low < arms["b"].mean_reward < high


def test_equal_arms_are_inconclusive_and_a_worse_challenger_is_kept() -> None:
    served = _served(30, 30)
    same = build_report(served, _events(served, {"a": 0.4, "b": 0.4}), SHARES)
    assert same.verdict == "inconclusive" and "users in all" in same.reason
    worse = build_report(_served(80, 80), _events(_served(80, 80), {"a": 0.6, "b": 0.1}), SHARES)
    assert worse.verdict == "keep"


def test_a_sample_ratio_mismatch_stops_the_verdict() -> None:
    served = _served(900, 1100, slates_per_user=1)
    report = build_report(served, _events(served, {"a": 0.1, "b": 0.9}), SHARES)
    assert not report.srm.ok
    assert report.verdict == "stopped" and "sample ratio mismatch" in report.reason
    assert report.comparisons == []
    fair = build_report(_served(1000, 1000, 1), [], SHARES)
    assert fair.srm.ok


def test_feedback_without_an_id_joins_the_users_latest_earlier_slate_with_the_movie() -> None:
    served = [
        Served("r1", "u", "a", "popularity", ("m1", "m2"), 100.0),
        Served("r2", "u", "a", "popularity", ("m3",), 200.0),
        Served("r3", "v", "b", "popularity", ("m1",), 100.0),
        Served("r4", "v", "b", "popularity", ("m9",), 150.0),
    ]
    when = datetime.fromtimestamp(300.0, UTC)
    events = [
        FeedbackEvent(event_id="1", type=FeedbackType.CLICK, user="u", movie="m1", timestamp=when),
        FeedbackEvent(
            event_id="2",
            type=FeedbackType.WATCHED,
            user="v",
            movie="m1",
            completion=95.0,
            timestamp=when,
        ),
    ]
    report = build_report(served, events, SHARES)
    arms = {a.arm: a for a in report.arms}
    assert arms["a"].feedback_events == 1 and arms["b"].feedback_events == 1
    assert arms["b"].completion == 0.5  # one of v's two slates was watched to the end


def test_a_join_as_of_storage_never_takes_a_slate_served_after_the_event_was_stored() -> None:
    """Within the clock-skew allowance a later slate holding the movie would win the join,
    so the join would change as slates are logged; bounded by the event's storage time it
    does not (what the autopilot reads)."""
    served = [
        Served("early", "u", "a", "ddpg-v1", ("m1",), 100.0),
        Served("later", "u", "a", "ddpg-v1", ("m1",), 130.0),  # served after the rating
    ]
    rated = FeedbackEvent(
        event_id="1",
        type=FeedbackType.RATED,
        user="u",
        movie="m1",
        rating=5.0,
        timestamp=datetime.fromtimestamp(110.0, UTC),
    )
    assert list(join_feedback(served, [rated])) == ["later"]  # skew: 60 s
    assert list(join_feedback(served, [rated], [110.5])) == ["early"]


def test_report_from_the_services_redis_logs_reproduces(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    reclog = RecLog(client, prefix, ttl_seconds=3600)
    store = RedisFeedbackStore(client, prefix, reclog)
    served = _served(12, 12, slates_per_user=2)
    for s in served:
        reclog.log(
            LoggedRecommendation(
                id=s.id,
                user=s.user,
                arm=s.arm,
                policy_version=s.version,
                slate=list(s.slate),
                propensities=np.ones(2, np.float32),
                state=None,
                action=None,
                created=s.created,
            )
        )
    assert store.submit(_events(served, {"a": 0.2, "b": 0.7})) > 0
    read = read_served(client, prefix)
    assert sorted(r.id for r in read) == sorted(s.id for s in served)
    assert read_served(client, prefix, since=1001.0) == [r for r in read if r.created >= 1001.0]
    events = read_feedback(client, prefix)
    stored = read_feedback_stored(client, prefix)  # the same events, with storage times
    assert [e for e, _ in stored] == events
    assert all(abs(t - time.time()) < 600 for _, t in stored)
    first = build_report(read, events, SHARES)
    again = build_report(read_served(client, prefix), read_feedback(client, prefix), SHARES)
    assert json.dumps(first.as_dict(), default=str) == json.dumps(again.as_dict(), default=str)
    assert {a.arm: a.slates for a in first.arms} == {"a": 24, "b": 24}
