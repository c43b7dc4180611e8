"""Rewards for real feedback, on the same scale as the simulator's: rating r gives (r - 3) / 2."""

from __future__ import annotations

from serving.schemas.feedback import FeedbackEvent, FeedbackType

WATCHED_POSITIVE = 90.0  # completion (percent) at or above which a watch counts as liked
ABANDONED_EARLY = 20.0  # completion below which a started watch counts as mildly negative


def reward(event: FeedbackEvent) -> float:
    """The reward of one event: in [-1, 1]; positive means "more like this"."""
    if event.type is FeedbackType.RATED:
        assert event.rating is not None  # checked by the event's validator
        return (event.rating - 3.0) / 2.0
    if event.type is FeedbackType.WATCHED:
        completion = event.completion if event.completion is not None else 100.0
        if completion >= WATCHED_POSITIVE:
            return 1.0
        if completion < ABANDONED_EARLY:
            return -0.2
        return 0.2 * completion / 100.0
    return {
        FeedbackType.CLICK: 0.05,
        FeedbackType.PLAY: 0.1,
        FeedbackType.SKIPPED: -0.1,
        FeedbackType.NOT_INTERESTED: -1.0,
    }[event.type]
