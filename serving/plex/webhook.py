"""Plex webhook payloads -> FeedbackEvents (the route is serving.routes.plex_webhook).

Plex POSTs multipart/form-data whose ``payload`` field is JSON (and sometimes a ``thumb`` file).
Mapping: media.scrobble -> watched (>= 90 %); media.rate -> rated (Plex's 0-10 halved);
media.play -> play; media.stop before 20 % -> watched with that low completion (mildly
negative); library.new -> no feedback, but an optional callback (e.g. to drop a placeholder).
Event ids are derived from the payload, so a redelivered webhook is stored once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from features.reward import ABANDONED_EARLY
from serving.plex.events import (
    SOURCE_WEBHOOK,
    completion_percent,
    event_id,
    plex_to_stars,
    scrobble_completion,
    to_datetime,
)
from serving.plex.ids import PlexRef, make_ref, new_movie_key, user_key
from serving.plex.webhook_payload import PlexMetadata, PlexPayload, field_errors
from serving.request_limits import BodyTooDeep, loads_bounded
from serving.schemas.feedback import FeedbackEvent, FeedbackType

log = logging.getLogger(__name__)

HANDLED = ("media.scrobble", "media.rate", "media.play", "media.stop", "library.new")
MAX_PAYLOAD = 1_000_000  # bytes of JSON; Plex sends a few KB
MAX_DEPTH = 32  # JSON nesting; Plex nests 3 levels

MovieResolver = Callable[[PlexRef], str]


class WebhookError(ValueError):
    """A webhook payload that cannot be understood. The message says what is wrong."""


@dataclass(frozen=True)
class ParsedWebhook:
    """What one delivery said: the Plex event name, the movie, and the feedback it yields."""

    event: str
    ref: PlexRef | None
    events: list[FeedbackEvent]


def _guid_ids(meta: PlexMetadata) -> list[str]:
    ids = [g.id for g in meta.Guid or []]
    if meta.guid:
        ids.append(meta.guid)
    return ids


def parse_webhook(
    payload: str | bytes, resolve_movie: MovieResolver = new_movie_key
) -> ParsedWebhook:
    """Parse one ``payload`` field. Raises WebhookError naming what is malformed (the field,
    for a wrong type, a non-finite number or an out-of-range time)."""
    if len(payload) > MAX_PAYLOAD:
        raise WebhookError(f"payload is larger than {MAX_PAYLOAD} bytes")
    try:
        data = loads_bounded(payload, MAX_DEPTH)
    except BodyTooDeep as exc:
        raise WebhookError(f"payload: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookError("payload is not a JSON object")
    if not isinstance(data.get("event"), str) or not data["event"]:
        raise WebhookError("payload has no 'event'")
    try:
        body = PlexPayload.model_validate(data)
    except ValidationError as exc:
        raise WebhookError(f"{data['event'][:100]}: {field_errors(exc)}") from None
    name = body.event
    meta = body.Metadata
    if name not in HANDLED:
        return ParsedWebhook(name, None, [])
    if meta is None:
        raise WebhookError(f"{name}: payload has no 'Metadata' object")
    if meta.type != "movie":
        return ParsedWebhook(name, None, [])  # episodes, tracks...: not ours
    if meta.ratingKey in (None, ""):
        raise WebhookError(f"{name}: Metadata has no 'ratingKey'")
    ref = make_ref(meta.ratingKey, meta.title or "", int(meta.year or 0), _guid_ids(meta))
    if name == "library.new":
        return ParsedWebhook(name, ref, [])

    account = body.Account
    if account is None or not (account.title or "").strip():
        raise WebhookError(f"{name}: payload has no 'Account.title'")
    account_name = (account.title or "").strip()
    account_id = "" if account.id is None else account.id
    user = user_key(account_name)
    movie = resolve_movie(ref)
    offset, duration, viewed_at = meta.viewOffset, meta.duration, meta.lastViewedAt
    base = (name, account_id, account_name, ref.rating_key)
    when = to_datetime(viewed_at) if viewed_at else None

    def make(**fields: Any) -> FeedbackEvent:
        if when is not None:
            fields.setdefault("timestamp", when)
        return FeedbackEvent(user=user, movie=movie, source=SOURCE_WEBHOOK, **fields)

    events: list[FeedbackEvent] = []
    if name == "media.scrobble":
        events.append(
            make(
                event_id=event_id(*base, viewed_at, offset),
                type=FeedbackType.WATCHED,
                completion=scrobble_completion(offset, duration),
            )
        )
    elif name == "media.rate":
        raw = body.rating if body.rating is not None else meta.userRating
        if raw is None:
            raise WebhookError("media.rate: payload has no 'rating'")
        stars = plex_to_stars(raw)
        if stars is not None:  # a cleared rating says nothing
            rated_at = meta.lastRatedAt
            fields_ts = to_datetime(rated_at) if rated_at else (when or to_datetime(None))
            events.append(
                make(
                    event_id=event_id(*base, rated_at, stars),
                    type=FeedbackType.RATED,
                    rating=stars,
                    timestamp=fields_ts,
                )
            )
    elif name == "media.play":
        events.append(make(event_id=event_id(*base, viewed_at, offset), type=FeedbackType.PLAY))
    elif name == "media.stop":
        pct = completion_percent(offset, duration)
        if pct is not None and pct < ABANDONED_EARLY:
            events.append(
                make(
                    event_id=event_id(*base, viewed_at, offset),
                    type=FeedbackType.WATCHED,
                    completion=round(pct, 2),
                )
            )
    return ParsedWebhook(name, ref, events)
