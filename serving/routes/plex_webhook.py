"""POST /v1/plex/webhook: Plex's webhook deliveries become feedback (serving.plex.webhook).

A delivery is a write, so it must be authenticated: Plex's webhook URL carries
``?secret=<MARQUEE_PLEX_WEBHOOK_SECRET>`` (Plex cannot send headers), or the request carries
``Authorization: Bearer <MARQUEE_API_TOKEN>``. With neither configured every delivery is refused
(403), as for /v1/feedback; a wrong or missing credential is 401. Parsing (which may build
the movie index from the graph) and storing (a Redis script, a spool fsync) block, so they run
in the threadpool, as /v1/feedback does. New events' history changes are written into the
graph as /v1/feedback's are (serving.feedback.graph_history).
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from serving.deps import (
    ApiTokenDep,
    HistoryDep,
    LibraryNewDep,
    MovieResolverDep,
    SinkDep,
    WebhookSecretDep,
    bearer_matches,
)
from serving.feedback.graph_history import submit_with_flags
from serving.plex.webhook import ParsedWebhook, WebhookError, parse_webhook
from serving.plex.webhook_payload import field_errors

log = logging.getLogger(__name__)

router = APIRouter(tags=["plex"])


def check_webhook_auth(
    request: Request, secret: str | None, token: str | None, given: str | None
) -> None:
    """The webhook secret in the query, or the API token as a bearer; 403 with neither set."""
    if secret is None and token is None:
        raise HTTPException(
            status_code=403,
            detail="webhook writes are refused: configure MARQUEE_PLEX_WEBHOOK_SECRET (and "
            "?secret=... in Plex's webhook URL) or MARQUEE_API_TOKEN",
        )
    if (
        secret is not None
        and given is not None
        and hmac.compare_digest(given.encode(), secret.encode())
    ):
        return
    if token is not None and bearer_matches(request, token):
        return
    raise HTTPException(status_code=401, detail="wrong or missing webhook secret")


@router.post(
    "/v1/plex/webhook",
    responses={
        202: {
            "description": "Redis is down or hung: the events are in the local fsynced spool "
            "(`spooled`: true; `stored` counts them) and are stored when it is back."
        },
        400: {"description": "Not a Plex webhook form, or a payload field is invalid."},
        401: {"description": "Wrong or missing secret / bearer token."},
        403: {"description": "No webhook secret and no API token configured."},
        413: {"description": "Body too large."},
    },
)
async def plex_webhook(
    request: Request,
    sink: SinkDep,
    secret: WebhookSecretDep,
    token: ApiTokenDep,
    resolve_movie: MovieResolverDep,
    on_library_new: LibraryNewDep,
    history: HistoryDep,
    given: Annotated[str | None, Query(alias="secret", include_in_schema=False)] = None,
) -> Any:
    check_webhook_auth(request, secret, token, given)
    try:
        form = await request.form()
    except Exception as exc:  # starlette raises several kinds for a broken body
        raise HTTPException(status_code=400, detail=f"body is not a form: {exc}") from None
    payload = form.get("payload")
    if payload is None:
        raise HTTPException(status_code=400, detail="form has no 'payload' field")
    if not isinstance(payload, str):
        payload = (await payload.read()).decode("utf-8", errors="replace")
    text = payload

    def handle() -> tuple[ParsedWebhook, int, bool]:
        try:
            parsed = parse_webhook(text, resolve_movie)
        except WebhookError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except ValidationError as exc:
            raise HTTPException(
                status_code=400, detail=f"payload gives invalid feedback: {field_errors(exc)}"
            ) from None
        stored, spooled = 0, False
        if parsed.events:
            flags, spooled = submit_with_flags(sink, parsed.events)
            stored = sum(flags)
            if history is not None:  # the new events join the user's history in the graph
                history.apply_new(parsed.events, flags)
        if parsed.event == "library.new" and parsed.ref is not None and on_library_new is not None:
            try:
                on_library_new(parsed.ref)
            except Exception:  # a failed clean-up must not make Plex retry the delivery
                log.exception("library.new handler failed for ratingKey %s", parsed.ref.rating_key)
        return parsed, stored, spooled

    parsed, stored, spooled = await run_in_threadpool(handle)
    log.info("Plex webhook %s: %d events, %d new", parsed.event, len(parsed.events), stored)
    body = {"event": parsed.event, "events": len(parsed.events), "stored": stored}
    if spooled:  # Redis down or hung: on disk (fsynced), stored when it is back
        return JSONResponse(status_code=202, content={**body, "spooled": True})
    return body
