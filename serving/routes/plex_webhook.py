"""POST /v1/plex/webhook: Plex's webhook deliveries become feedback (serving.plex.webhook).

With a webhook secret configured (MARQUEE_PLEX_WEBHOOK_SECRET), Plex's webhook URL must carry
``?secret=...`` (403 otherwise). Parsing (which may build the movie index from the graph) and
storing (a Redis script, a spool fsync) block, so they run in the threadpool, as /v1/feedback
does.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from serving.deps import LibraryNewDep, MovieResolverDep, SinkDep, WebhookSecretDep
from serving.plex.webhook import ParsedWebhook, WebhookError, parse_webhook

log = logging.getLogger(__name__)

router = APIRouter(tags=["plex"])


@router.post("/v1/plex/webhook")
async def plex_webhook(
    request: Request,
    sink: SinkDep,
    secret: WebhookSecretDep,
    resolve_movie: MovieResolverDep,
    on_library_new: LibraryNewDep,
    given: Annotated[str | None, Query(alias="secret", include_in_schema=False)] = None,
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
    text = payload

    def handle() -> tuple[ParsedWebhook, int]:
        try:
            parsed = parse_webhook(text, resolve_movie)
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
        return parsed, stored

    parsed, stored = await run_in_threadpool(handle)
    log.info("Plex webhook %s: %d events, %d new", parsed.event, len(parsed.events), stored)
    return {"event": parsed.event, "events": len(parsed.events), "stored": stored}
