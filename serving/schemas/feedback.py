"""The feedback event: what a person did with a movie, from HTTP, a Plex webhook or history.

Every source (POST /v1/feedback, the Plex webhook, the Plex history poller) produces these, and
the online learner turns them into transitions. ``features.reward`` maps them to rewards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FeedbackType(StrEnum):
    CLICK = "click"
    PLAY = "play"
    WATCHED = "watched"
    RATED = "rated"
    NOT_INTERESTED = "not_interested"
    SKIPPED = "skipped"


class FeedbackEvent(BaseModel):
    """One thing a user did. Names a recommendation id, or a (user, movie) pair, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=200, description="Idempotency key.")
    type: FeedbackType
    recommendation_id: str | None = Field(default=None, max_length=200)
    user: str | None = Field(default=None, max_length=200)
    movie: str | None = Field(default=None, max_length=200, description="Graph movie key.")
    # strict: a JSON number, never "4" or true (which pydantic would otherwise read as 1.0)
    rating: float | None = Field(default=None, ge=0.5, le=5.0, strict=True, allow_inf_nan=False)
    completion: float | None = Field(
        default=None, ge=0.0, le=100.0, strict=True, allow_inf_nan=False, description="Percent."
    )
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str = Field(default="http", max_length=40)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        """A timestamp without a zone is read as UTC, so every stored time compares."""
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _check(self) -> FeedbackEvent:
        if self.recommendation_id is None and (self.user is None or self.movie is None):
            raise ValueError("feedback needs a recommendation_id or both user and movie")
        if self.type is FeedbackType.RATED:
            if self.rating is None:
                raise ValueError("a 'rated' event needs a rating from 0.5 to 5")
            if round(self.rating * 2) != self.rating * 2:
                raise ValueError(f"rating {self.rating} is not a multiple of 0.5")
        elif self.rating is not None:
            raise ValueError(f"only 'rated' events carry a rating, not {self.type.value!r}")
        if self.type is FeedbackType.WATCHED and self.completion is None:
            raise ValueError("a 'watched' event needs completion (percent, 0-100)")
        return self
