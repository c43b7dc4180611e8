"""Response bodies of the recommendations endpoint."""

from __future__ import annotations

from pydantic import BaseModel


class RecommendedMovie(BaseModel):
    """One movie on a slate, ready to show: what, why, and which slate/policy/arm it came from."""

    rank: int
    movie: str
    title: str
    year: int | None
    poster_url: str | None
    score: float
    propensity: float
    explanation: str
    recommendation_id: str
    policy_version: str
    arm: str


class Recommendations(BaseModel):
    user: str
    recommendation_id: str
    policy_version: str
    arm: str
    cold_start: bool
    logged: bool  # False when Redis was unreachable: served, but feedback cannot join it
    items: list[RecommendedMovie]


class FeedbackAccepted(BaseModel):
    received: int
    new: int
    spooled: bool = False  # True (with status 202): kept in the local spool until Redis is back
