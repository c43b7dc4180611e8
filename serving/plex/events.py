"""FeedbackEvents from what Plex reports: history entries, ratings, webhook deliveries.

Event ids are hashes of what identifies the occurrence (source, account, ratingKey, time, offset)
so that the same history entry or the same webhook delivered twice yields the same id and is
stored once. Sync and the history poller build history ids the same way, so they dedupe too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from features.reward import WATCHED_POSITIVE
from serving.schemas.feedback import FeedbackEvent, FeedbackType

SOURCE_HISTORY = "plex-history"
SOURCE_WEBHOOK = "plex-webhook"
SOURCE_SYNC = "plex-sync"


def event_id(*parts: object) -> str:
    """A deterministic id from the parts that identify one occurrence."""
    text = "\x1f".join(str(p) for p in parts)
    return "plex-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def to_datetime(value: datetime | int | float | None) -> datetime:
    """An aware UTC datetime from plexapi's naive local datetimes or Unix seconds; now if None."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)  # naive values are taken as local time, as plexapi makes them
    return datetime.fromtimestamp(float(value), UTC)


def to_epoch(value: datetime | int | float | None) -> int:
    """Unix seconds (0 for None)."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def plex_to_stars(rating: float) -> float | None:
    """Plex's 0-10 user rating on Marquee's 0.5-5 scale (halves); None when cleared (0)."""
    stars = round(float(rating)) / 2.0
    if stars < 0.5:
        return None
    return min(stars, 5.0)


def history_event(
    *, account_id: object, user: str, movie: str, rating_key: object, viewed_at: datetime | int
) -> FeedbackEvent:
    """A finished watch from the history (Plex records history at about 90 %)."""
    seconds = to_epoch(viewed_at)
    return FeedbackEvent(
        event_id=event_id("history", account_id, rating_key, seconds),
        type=FeedbackType.WATCHED,
        user=user,
        movie=movie,
        completion=100.0,
        timestamp=to_datetime(seconds),
        source=SOURCE_HISTORY,
    )


def rating_event(
    *,
    account_id: object,
    user: str,
    movie: str,
    rating_key: object,
    plex_rating: float,
    rated_at: datetime | int | None,
    source: str = SOURCE_SYNC,
) -> FeedbackEvent | None:
    """A rating event, or None when the rating was cleared."""
    stars = plex_to_stars(plex_rating)
    if stars is None:
        return None
    seconds = to_epoch(rated_at)
    return FeedbackEvent(
        event_id=event_id("rated", account_id, rating_key, seconds, stars),
        type=FeedbackType.RATED,
        user=user,
        movie=movie,
        rating=stars,
        timestamp=to_datetime(seconds or None),
        source=source,
    )


def completion_percent(view_offset_ms: float | None, duration_ms: float | None) -> float | None:
    """Percent watched from Plex's viewOffset and duration (ms), or None when unknown."""
    if not duration_ms or duration_ms <= 0 or view_offset_ms is None:
        return None
    return max(0.0, min(100.0, 100.0 * float(view_offset_ms) / float(duration_ms)))


def scrobble_completion(view_offset_ms: float | None, duration_ms: float | None) -> float:
    """Plex scrobbles at about 90 %: the completion is at least that, whatever the offset says."""
    pct = completion_percent(view_offset_ms, duration_ms)
    return max(WATCHED_POSITIVE, pct if pct is not None else 100.0)
