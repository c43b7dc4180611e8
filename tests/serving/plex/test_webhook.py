"""Plex webhooks: parsing, mapping to feedback, idempotence, the secret, malformed deliveries."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving import deps
from serving.feedback.graph_history import FeedbackHistory
from serving.feedback.sink import InMemoryFeedbackSink
from serving.feedback.store import reward
from serving.log_redaction import RedactSecretFilter
from serving.plex.ids import PlexRef, new_movie_key
from serving.plex.webhook import parse_webhook
from serving.routes import plex_webhook
from serving.schemas.feedback import FeedbackType

SECRET = "hook-secret-42"


def payload(event: str, **meta: Any) -> dict[str, Any]:
    metadata = {
        "librarySectionType": "movie",
        "ratingKey": "101",
        "key": "/library/metadata/101",
        "guid": "plex://movie/5d7768",
        "type": "movie",
        "title": "Toy Story",
        "year": 1995,
        "duration": 4_860_000,
        "Guid": [{"id": "imdb://tt0114709"}, {"id": "tmdb://862"}],
        **meta,
    }
    return {
        "event": event,
        "user": True,
        "owner": True,
        "Account": {"id": 1, "thumb": "https://plex.tv/users/x/avatar", "title": "Alice"},
        "Server": {"title": "Office", "uuid": "54664a3d8acc39983675640ec9ce00b70af9cc36"},
        "Player": {
            "local": True,
            "title": "Plex Web (Firefox)",
            "uuid": "r6yfkdnfggbh2bdnvkffwbms",
        },
        "Metadata": metadata,
    }


def _webhook_app(
    sink: InMemoryFeedbackSink,
    secret: str | None,
    on_new: Callable[[PlexRef], None] | None,
    token: str | None = None,
    history: FeedbackHistory | None = None,
) -> FastAPI:
    """The webhook route alone, its dependencies overridden (no services behind it)."""
    app = FastAPI()
    app.include_router(plex_webhook.router)
    app.dependency_overrides[deps.get_sink] = lambda: sink
    app.dependency_overrides[deps.get_webhook_secret] = lambda: secret
    app.dependency_overrides[deps.get_api_token] = lambda: token
    app.dependency_overrides[deps.get_movie_resolver] = lambda: new_movie_key
    app.dependency_overrides[deps.get_library_new] = lambda: on_new
    app.dependency_overrides[deps.get_history] = lambda: history
    return app


@pytest.fixture
def app_parts() -> tuple[TestClient, InMemoryFeedbackSink, list[PlexRef]]:
    sink = InMemoryFeedbackSink()
    arrived: list[PlexRef] = []
    app = _webhook_app(sink, SECRET, arrived.append)
    return TestClient(app), sink, arrived


def post(client: TestClient, body: dict[str, Any] | str, secret: str | None = SECRET) -> Any:
    """POST the way Plex does: multipart/form-data with a JSON ``payload`` field."""
    text = body if isinstance(body, str) else json.dumps(body)
    url = "/v1/plex/webhook" + (f"?secret={secret}" if secret is not None else "")
    return client.post(
        url, files={"payload": (None, text), "thumb": ("thumb.jpg", b"\xff\xd8", "image/jpeg")}
    )


@pytest.mark.parametrize(
    ("body", "kind", "check"),
    [
        (
            payload("media.scrobble", viewOffset=4_400_000),
            FeedbackType.WATCHED,
            {"completion": 90.53},
        ),
        (payload("media.scrobble", viewOffset=100), FeedbackType.WATCHED, {"completion": 90.0}),
        ({**payload("media.rate"), "rating": 7}, FeedbackType.RATED, {"rating": 3.5}),
        (payload("media.rate", userRating=10), FeedbackType.RATED, {"rating": 5.0}),
        (payload("media.play", viewOffset=0), FeedbackType.PLAY, {}),
        (payload("media.stop", viewOffset=486_000), FeedbackType.WATCHED, {"completion": 10.0}),
    ],
)
def test_mapping(body: dict[str, Any], kind: FeedbackType, check: dict[str, float]) -> None:
    parsed = parse_webhook(json.dumps(body))
    (event,) = parsed.events
    assert event.type is kind
    assert event.user == "plex-alice" and event.movie == "imdb-tt0114709"
    assert event.source == "plex-webhook"
    for name, value in check.items():
        assert getattr(event, name) == pytest.approx(value, abs=0.01)


def test_rewards_follow_the_mapping() -> None:
    def one(body: dict[str, Any]) -> float:
        return reward(parse_webhook(json.dumps(body)).events[0])

    assert one(payload("media.scrobble", viewOffset=4_500_000)) == 1.0
    assert one(payload("media.stop", viewOffset=100_000)) < 0  # abandoned early: mildly negative
    assert one({**payload("media.rate"), "rating": 2}) == -1.0  # 1 star


@pytest.mark.parametrize(
    "body",
    [
        payload("media.stop", viewOffset=3_000_000),  # stopped mid-way: the scrobble will tell
        {**payload("media.rate"), "rating": 0},  # rating cleared
        payload("media.pause"),  # not an event we learn from
        payload("media.scrobble", type="episode"),  # not a movie
    ],
)
def test_deliveries_that_yield_no_feedback(body: dict[str, Any]) -> None:
    assert parse_webhook(json.dumps(body)).events == []


def test_resolver_maps_to_graph_keys() -> None:
    parsed = parse_webhook(json.dumps(payload("media.play")), resolve_movie=lambda ref: "1")
    assert parsed.events[0].movie == "1"
    assert parsed.ref is not None and (parsed.ref.imdb_id, parsed.ref.tmdb_id) == ("tt0114709", 862)


def test_same_webhook_twice_is_stored_once(
    app_parts: tuple[TestClient, InMemoryFeedbackSink, list],
) -> None:
    client, sink, _ = app_parts
    body = payload("media.scrobble", viewOffset=4_500_000, lastViewedAt=1_700_000_000)
    first, second = post(client, body), post(client, body)
    assert first.status_code == second.status_code == 200
    assert first.json()["stored"] == 1 and second.json()["stored"] == 0
    assert len(sink) == 1
    later = payload("media.scrobble", viewOffset=4_500_000, lastViewedAt=1_700_090_000)
    assert post(client, later).json()["stored"] == 1  # a rewatch is a new event


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "payload is not valid JSON"),
        ("[1, 2]", "payload is not a JSON object"),
        (json.dumps({"Metadata": {}}), "payload has no 'event'"),
        (json.dumps({"event": "media.play"}), "media.play: payload has no 'Metadata' object"),
        (
            json.dumps(payload("media.play", ratingKey=None)),
            "media.play: Metadata has no 'ratingKey'",
        ),
        (
            json.dumps({**payload("media.play"), "Account": {"id": 3}}),
            "media.play: payload has no 'Account.title'",
        ),
        (
            json.dumps(payload("media.stop", viewOffset="soon")),
            "media.stop: Metadata.viewOffset: Input should be a valid number",
        ),
        (json.dumps(payload("media.rate")), "media.rate: payload has no 'rating'"),
        (
            json.dumps({**payload("media.rate"), "rating": "great"}),
            "media.rate: rating: Input should be a valid number",
        ),
        (
            json.dumps({**payload("media.play"), "Account": {"id": 1, "title": "A" * 300}}),
            "payload gives invalid feedback: user: String should have at most 200 characters",
        ),
    ],
)
def test_malformed_payload_is_400_and_stores_nothing(
    app_parts: tuple[TestClient, InMemoryFeedbackSink, list], body: str, message: str
) -> None:
    client, sink, _ = app_parts
    response = post(client, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert len(sink) == 0


def test_form_without_payload_is_400(
    app_parts: tuple[TestClient, InMemoryFeedbackSink, list],
) -> None:
    client, sink, _ = app_parts
    response = client.post(f"/v1/plex/webhook?secret={SECRET}", files={"other": (None, "x")})
    assert (
        response.status_code == 400 and response.json()["detail"] == "form has no 'payload' field"
    )
    assert len(sink) == 0


@pytest.mark.parametrize("secret", [None, "", "hook-secret-4", "hook-secret-42x"])
def test_wrong_or_missing_secret_is_401(
    app_parts: tuple[TestClient, InMemoryFeedbackSink, list],
    secret: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client, sink, _ = app_parts
    response = post(client, payload("media.play"), secret=secret)
    assert response.status_code == 401
    assert len(sink) == 0
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert SECRET not in ours and SECRET not in response.text  # (httpx here is the test client)


def test_with_no_secret_and_no_token_configured_writes_are_refused() -> None:
    sink = InMemoryFeedbackSink()
    client = TestClient(_webhook_app(sink, None, None))
    for given in (None, "", "anything"):
        response = post(client, payload("media.play"), secret=given)
        assert response.status_code == 403 and "MARQUEE_PLEX_WEBHOOK_SECRET" in response.text
    assert len(sink) == 0


def test_the_api_token_as_bearer_also_authorises_a_delivery() -> None:
    sink = InMemoryFeedbackSink()
    client = TestClient(_webhook_app(sink, None, None, token="tok-1"))
    files = {"payload": (None, json.dumps(payload("media.play")))}
    wrong = client.post("/v1/plex/webhook", files=files, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401 and len(sink) == 0
    assert post(client, payload("media.play"), secret="tok-1").status_code == 401  # not a secret
    ok = client.post("/v1/plex/webhook", files=files, headers={"Authorization": "Bearer tok-1"})
    assert ok.status_code == 200 and ok.json()["stored"] == 1


def test_either_credential_works_when_both_are_configured() -> None:
    sink = InMemoryFeedbackSink()
    client = TestClient(_webhook_app(sink, SECRET, None, token="tok-1"))
    assert post(client, payload("media.play", viewOffset=1)).status_code == 200
    files = {"payload": (None, json.dumps(payload("media.play", viewOffset=2)))}
    ok = client.post("/v1/plex/webhook", files=files, headers={"Authorization": "Bearer tok-1"})
    assert ok.status_code == 200 and len(sink) == 2


def test_secret_looking_query_parameters_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access.any")
    logger.addFilter(RedactSecretFilter())
    url = "/v1/x?api_token=T1&apikey=T2&password=T3&client_secret=T4&sig=T5&page=2&k=10"
    with caplog.at_level(logging.INFO, logger="test.access.any"):
        logger.info('"%s %s"', "GET", url)
    assert not any(f"T{i}" in caplog.text for i in range(1, 6))
    assert "page=2&k=10" in caplog.text


def test_library_new_calls_back_without_feedback(
    app_parts: tuple[TestClient, InMemoryFeedbackSink, list],
) -> None:
    client, sink, arrived = app_parts
    response = post(client, payload("library.new", ratingKey="555"))
    assert response.status_code == 200 and response.json()["events"] == 0
    assert [r.rating_key for r in arrived] == ["555"] and arrived[0].imdb_id == "tt0114709"
    assert len(sink) == 0


def test_access_log_filter_masks_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    logger.addFilter(RedactSecretFilter())
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.info('%s - "%s %s"', "127.0.0.1", "POST", f"/v1/plex/webhook?secret={SECRET}&x=1")
    assert SECRET not in caplog.text and "/v1/plex/webhook?secret=***&x=1" in caplog.text
