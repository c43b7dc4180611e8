"""Plex webhooks -> FeedbackEvents, and the FastAPI route that receives them.

Plex POSTs multipart/form-data whose ``payload`` field is JSON (and sometimes a ``thumb`` file).
Mapping: media.scrobble -> watched (>= 90 %); media.rate -> rated (Plex's 0-10 halved);
media.play -> play; media.stop before 20 % -> watched with that low completion (mildly
negative); library.new -> no feedback, but an optional callback (e.g. to drop a placeholder).
Event ids are derived from the payload, so a redelivered webhook is stored once.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import ValidationError

from serving.feedback.reward import ABANDONED_EARLY
from serving.feedback.sink import FeedbackSink
from serving.plex.events import (
    SOURCE_WEBHOOK,
    completion_percent,
    event_id,
    plex_to_stars,
    scrobble_completion,
    to_datetime,
)
from serving.plex.ids import PlexRef, make_ref, new_movie_key, user_key
from serving.schemas.feedback import FeedbackEvent, FeedbackType

log = logging.getLogger(__name__)

HANDLED = ("media.scrobble", "media.rate", "media.play", "media.stop", "library.new")
MAX_PAYLOAD = 1_000_000  # bytes of JSON; Plex sends a few KB

MovieResolver = Callable[[PlexRef], str]


class WebhookError(ValueError):
    """A webhook payload that cannot be understood. The message says what is wrong."""


@dataclass(frozen=True)
class ParsedWebhook:
    """What one delivery said: the Plex event name, the movie, and the feedback it yields."""

    event: str
    ref: PlexRef | None
    events: list[FeedbackEvent]


def _num(meta: dict[str, Any], name: str) -> float | None:
    value = meta.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise WebhookError(f"Metadata.{name} is not a number: {value!r}") from None


def _guid_ids(meta: dict[str, Any]) -> list[str]:
    ids = [str(g.get("id", "")) for g in meta.get("Guid") or [] if isinstance(g, dict)]
    if meta.get("guid"):
        ids.append(str(meta["guid"]))
    return ids


def parse_webhook(
    payload: str | bytes, resolve_movie: MovieResolver = new_movie_key
) -> ParsedWebhook:
    """Parse one ``payload`` field. Raises WebhookError naming what is malformed."""
    if len(payload) > MAX_PAYLOAD:
        raise WebhookError(f"payload is larger than {MAX_PAYLOAD} bytes")
    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookError("payload is not a JSON object")
    name = data.get("event")
    if not isinstance(name, str) or not name:
        raise WebhookError("payload has no 'event'")
    meta = data.get("Metadata")
    if name not in HANDLED:
        return ParsedWebhook(name, None, [])
    if not isinstance(meta, dict):
        raise WebhookError(f"{name}: payload has no 'Metadata' object")
    if meta.get("type") != "movie":
        return ParsedWebhook(name, None, [])  # episodes, tracks...: not ours
    rating_key = meta.get("ratingKey")
    if rating_key in (None, ""):
        raise WebhookError(f"{name}: Metadata has no 'ratingKey'")
    year = _num(meta, "year")
    ref = make_ref(rating_key, str(meta.get("title") or ""), int(year or 0), _guid_ids(meta))
    if name == "library.new":
        return ParsedWebhook(name, ref, [])

    account = data.get("Account")
    if not isinstance(account, dict) or not str(account.get("title") or "").strip():
        raise WebhookError(f"{name}: payload has no 'Account.title'")
    account_name = str(account["title"]).strip()
    account_id = account.get("id", "")
    user = user_key(account_name)
    movie = resolve_movie(ref)
    offset = _num(meta, "viewOffset")
    duration = _num(meta, "duration")
    viewed_at = _num(meta, "lastViewedAt")
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
        raw = data.get("rating", meta.get("userRating"))
        if raw is None:
            raise WebhookError("media.rate: payload has no 'rating'")
        try:
            stars = plex_to_stars(float(raw))
        except (TypeError, ValueError):
            raise WebhookError(f"media.rate: rating is not a number: {raw!r}") from None
        if stars is not None:  # a cleared rating says nothing
            rated_at = _num(meta, "lastRatedAt")
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


_SECRET_IN_URL = re.compile(
    r"((?:[?&]|^)(?:secret|token|x-plex-token|api_?key|access_token)=)[^&\s\"]*", re.IGNORECASE
)


class RedactSecretFilter(logging.Filter):
    """Masks ``secret=``, token and API-key query parameters in log records (uvicorn's access
    log prints query strings).
    Install with ``logging.getLogger("uvicorn.access").addFilter(RedactSecretFilter())``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_URL.sub(r"\1***", record.msg)
        return True


def build_plex_webhook_router(
    sink_dependency: Callable[..., FeedbackSink | Awaitable[FeedbackSink]],
    *,
    secret: str | None = None,
    resolve_movie: MovieResolver = new_movie_key,
    on_library_new: Callable[[PlexRef], None] | None = None,
) -> APIRouter:
    """A router with ``POST /v1/plex/webhook``. With ``secret``, Plex's webhook URL must carry
    ``?secret=...`` (403 otherwise). ``resolve_movie`` maps a Plex item to a graph movie key."""
    router = APIRouter(tags=["plex"])

    @router.post("/v1/plex/webhook")
    async def plex_webhook(
        request: Request,
        sink: FeedbackSink = Depends(sink_dependency),  # noqa: B008
        given: str | None = Query(default=None, alias="secret", include_in_schema=False),
    ) -> dict[str, Any]:
        if secret is not None and (
            given is None or not hmac.compare_digest(given.encode(), secret.encode())
        ):
            raise HTTPException(status_code=403, detail="wrong or missing webhook secret")
        try:
            form = await request.form()
        except Exception as exc:  # starlette raises several kinds for a broken body
            raise HTTPException(status_code=400, detail=f"body is not a form: {exc}") from None
        payload = form.get("payload")
        if payload is None:
            raise HTTPException(status_code=400, detail="form has no 'payload' field")
        if not isinstance(payload, str):
            payload = (await payload.read()).decode("utf-8", errors="replace")
        try:
            parsed = parse_webhook(payload, resolve_movie)
        except WebhookError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except ValidationError as exc:
            msgs = "; ".join(e["msg"] for e in exc.errors())
            raise HTTPException(
                status_code=400, detail=f"payload gives invalid feedback: {msgs}"
            ) from None
        stored = sink.submit(parsed.events) if parsed.events else 0
        if parsed.event == "library.new" and parsed.ref is not None and on_library_new is not None:
            try:
                on_library_new(parsed.ref)
            except Exception:  # a failed clean-up must not make Plex retry the delivery
                log.exception("library.new handler failed for ratingKey %s", parsed.ref.rating_key)
        log.info("Plex webhook %s: %d events, %d new", parsed.event, len(parsed.events), stored)
        return {"event": parsed.event, "events": len(parsed.events), "stored": stored}

    return router
