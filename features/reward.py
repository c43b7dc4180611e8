"""The one reward scale, shared by the simulator (env) and real feedback (serving).

A rating r is worth (r - 3) / 2: 5 stars give 1, 3 stars 0, half a star -1.25. The
simulator adds ``NO_CHOICE_PENALTY`` for a slate a simulated user ignored. Real feedback
that carries no rating is put on the same scale by ``feedback_reward``: a watch to the end
counts as liked (1), one abandoned early as mildly negative, "not interested" as -1, and
clicks, plays and skips as small nudges.
"""

from __future__ import annotations

RATING_NEUTRAL = 3.0  # the rating worth 0
NO_CHOICE_PENALTY = -0.1  # the simulator's reward when nothing on the slate is chosen
WATCHED_POSITIVE = 90.0  # completion (percent) at or above which a watch counts as liked
ABANDONED_EARLY = 20.0  # completion below which a started watch counts as mildly negative
ABANDONED_REWARD = -0.2

# rewards of feedback kinds that carry neither a rating nor a completion
KIND_REWARD: dict[str, float] = {
    "click": 0.05,
    "play": 0.1,
    "skipped": -0.1,
    "not_interested": -1.0,
}


def rating_reward(rating: float) -> float:
    """(rating - 3) / 2."""
    return (float(rating) - RATING_NEUTRAL) / 2.0


def watch_reward(completion: float | None) -> float:
    """A watch without a rating: 1 from ``WATCHED_POSITIVE`` percent (or unknown completion),
    ``ABANDONED_REWARD`` below ``ABANDONED_EARLY``, a small positive amount between."""
    done = completion if completion is not None else 100.0
    if done >= WATCHED_POSITIVE:
        return 1.0
    if done < ABANDONED_EARLY:
        return ABANDONED_REWARD
    return 0.2 * done / 100.0


def feedback_reward(
    kind: str, rating: float | None = None, completion: float | None = None
) -> float:
    """The reward of one piece of real feedback of ``kind`` ("rated", "watched", "click",
    "play", "skipped", "not_interested"): in [-1.25, 1]; positive means "more like this"."""
    if kind == "rated":
        if rating is None:
            raise ValueError("a 'rated' feedback needs a rating")
        return rating_reward(rating)
    if kind == "watched":
        return watch_reward(completion)
    try:
        return KIND_REWARD[kind]
    except KeyError:
        raise ValueError(f"no reward for feedback of kind {kind!r}") from None
