"""What the autopilot's interleaved test credits each team with, read from the service's own
Redis logs: every piece of feedback on a team's films, good or bad."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from serving.feedback.store import RedisFeedbackStore
from serving.promotion_evidence import read_logs, team_samples
from serving.reclog import LoggedRecommendation, RecLog
from serving.schemas.feedback import FeedbackEvent, FeedbackType

SLATE = ["m0", "m1", "m2", "m3"]
TEAMS = ("champion", "challenger", "champion", "challenger")


def _slate(reclog: RecLog, rec: str, user: str) -> None:
    reclog.log(
        LoggedRecommendation(
            id=rec,
            user=user,
            arm="challenger",
            policy_version="ddpg-v1|ddpg-v2",
            slate=SLATE,
            propensities=np.full(4, 0.5, np.float32),
            state=None,
            action=None,
            created=time.time(),
            teams=TEAMS,
        )
    )


def test_a_team_is_debited_for_its_disliked_and_dismissed_films(
    server_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = server_cp
    reclog = RecLog(client, prefix, ttl_seconds=3600)
    sink = RedisFeedbackStore(client, prefix, reclog)
    _slate(reclog, "r1", "u1")  # u1 picks the champion's m0 and rates it 1 star
    _slate(reclog, "r2", "u1")  # u1 dismisses the champion's m2, rates the challenger's m1 5
    _slate(reclog, "r3", "u2")  # u2 skips the slate (names no film: credits no team)
    events = [
        FeedbackEvent(
            event_id="e1", type=FeedbackType.RATED, recommendation_id="r1", movie="m0", rating=1.0
        ),
        FeedbackEvent(
            event_id="e2", type=FeedbackType.NOT_INTERESTED, recommendation_id="r2", movie="m2"
        ),
        FeedbackEvent(
            event_id="e3", type=FeedbackType.RATED, recommendation_id="r2", movie="m1", rating=5.0
        ),
        FeedbackEvent(event_id="e4", type=FeedbackType.SKIPPED, recommendation_id="r3"),
    ]
    assert sink.submit(events)
    logs = read_logs(client, prefix, 0.0)
    champion, challenger = team_samples(
        logs, "challenger", "ddpg-v1|ddpg-v2", ("champion", "challenger")
    )
    # per user (u1, u2), the mean over their slates of what the team's films earned
    assert champion.rewards == pytest.approx([(-1.0 + -1.0) / 2, 0.0])
    assert challenger.rewards == pytest.approx([(0.0 + 1.0) / 2, 0.0])
    # acceptance stays a positive response; the ratings are every rating a team's films got
    assert champion.acceptance == [0.0, 0.0] and challenger.acceptance == [0.5, 0.0]
    assert list(champion.ratings) == [1.0] and list(challenger.ratings) == [5.0]
