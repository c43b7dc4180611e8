"""GET /v1/users/{user}/recommendations against a real graph store and a real Redis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from agent.buffers.hash_tag import RECLOG, tag
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import popularity_factory
from serving.reclog import RecLog
from serving.schemas.recommendations import Recommendations
from tests.serving.conftest import AUTH, make_client


def test_known_user_gets_explained_unseen_movies(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, redis_cp) as api:
        res = api.get("/v1/users/fan/recommendations", params={"k": 4})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["user"] == "fan" and body["arm"] == "default"
    assert body["policy_version"] == "popularity" and body["logged"] is True
    assert body["cold_start"] is False
    movies = [i["movie"] for i in body["items"]]
    assert len(movies) == 4 and not {"1", "2"} & set(movies)  # already rated by fan
    first = body["items"][0]
    # Blade Runner: the most popular sci-fi movie fan has not seen, explained by a graph path
    assert first["movie"] == "3" and first["title"] == "Blade Runner" and first["year"] == 1982
    assert first["poster_url"] == "https://posters.example/3.jpg"
    assert first["explanation"] == store.explain("fan", "3").text  # type: ignore[union-attr]
    assert "Ridley Scott" in first["explanation"]
    for item in body["items"]:
        assert item["recommendation_id"] == body["recommendation_id"]
        assert item["policy_version"] == "popularity" and item["arm"] == "default"
    # the slate is logged in Redis with a TTL
    client, prefix = redis_cp
    logged = RecLog(client, prefix, 60).get(body["recommendation_id"])
    assert logged is not None and logged.slate == movies and logged.user == "fan"
    assert 0 < client.ttl(f"{tag(prefix, RECLOG)}:rec:{body['recommendation_id']}") <= 7 * 24 * 3600  # type: ignore[operator]


@pytest.mark.parametrize(
    ("params", "expected_first", "reason"),
    [
        ({"k": 3}, "6", "Popular with everyone."),
        ({"k": 3, "genres": "Comedy"}, "6", "Popular in Comedy."),
        ({"k": 2, "genres": "sci_fi"}, "3", "Popular in Sci-Fi."),
        ({"k": 2, "genres": "Nonexistent,Sci-Fi"}, "3", "Popular in Sci-Fi."),
    ],
)
def test_unknown_user_gets_cold_start(
    api: TestClient, params: dict[str, object], expected_first: str, reason: str
) -> None:
    res = api.get("/v1/users/stranger-42/recommendations", params=params)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["cold_start"] is True and len(body["items"]) == params["k"]
    assert body["items"][0]["movie"] == expected_first
    assert body["items"][0]["explanation"] == reason


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("k=0", "Input should be greater than or equal to 1"),
        ("k=abc", "Input should be a valid integer"),
        ("k=101", "k must be at most 100, got 101"),
    ],
)
def test_bad_k_is_refused(api: TestClient, query: str, message: str) -> None:
    res = api.get(f"/v1/users/fan/recommendations?{query}")
    assert res.status_code == 422
    [error] = res.json()["detail"]  # one shape for every 422: a list of {loc, msg, type}
    assert error["loc"] == ["query", "k"] and message in error["msg"]


def test_reads_can_be_protected(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, server_cp, protect_reads=True) as api:
        assert api.get("/v1/users/fan/recommendations").status_code == 401
        assert api.get("/metrics").status_code == 401
        assert api.get("/v1/users/fan/recommendations", headers=AUTH).status_code == 200
        assert api.get("/healthz").status_code == 200  # liveness stays open


def test_ab_arms_split_users_and_are_reported(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    ab = {
        "salt": "t",
        "arms": [
            {"name": "left", "policy": "popularity", "share": 0.5},
            {"name": "right", "policy": "popularity", "share": 0.5},
        ],
    }
    with make_client(tmp_path, store, server_cp, ab=ab) as api:
        arms = {api.get(f"/v1/users/u{i}/recommendations?k=1").json()["arm"] for i in range(40)}
        again = api.get("/v1/users/u7/recommendations?k=1").json()["arm"]
        assert again == api.get("/v1/users/u7/recommendations?k=1").json()["arm"]
        metrics = api.get("/metrics").text
    assert arms == {"left", "right"}
    assert 'marquee_recommendations_served_total{arm="left"}' in metrics
    assert (
        'marquee_policy_loaded{arm="right",policy="popularity",version="popularity"} 1.0' in metrics
    )


def test_arm_with_unloadable_policy_fails_at_start(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    ab = {"arms": [{"name": "x", "policy": "models:/marquee@champion", "share": 1.0}]}
    with pytest.raises(ValueError, match="names policy 'models:/marquee@champion', but only"):  # noqa: SIM117
        with make_client(tmp_path, store, server_cp, factory=popularity_factory(), ab=ab):
            pass


def test_body_is_the_documented_schema(api: TestClient) -> None:
    """The route writes its JSON itself (no second validation by FastAPI): the body still
    parses as the Recommendations schema, and OpenAPI still documents that schema."""
    res = api.get("/v1/users/fan/recommendations", params={"k": 3})
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    body = Recommendations.model_validate_json(res.content)
    assert body.user == "fan" and len(body.items) == 3
    spec = api.get("/openapi.json").json()
    ok = spec["paths"]["/v1/users/{user}/recommendations"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/Recommendations")


def test_repeat_requests_show_what_a_fresh_read_of_the_graph_shows(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    """The app keeps cards and explanations between requests (serving.presentation.Presenter):
    after a write that gives fan a new liked movie, the next slate explains by it."""
    shown: list[dict[str, str]] = []
    with make_client(tmp_path, store, redis_cp) as api:
        for step in range(6):
            if step == 3:  # fan likes a comedy: comedies get a path now
                batch = GraphBatch()
                row = {"src": "fan", "dst": "6", "rating": 5.0, "timestamp": 9_000}
                batch.add_edges(EdgeKind.RATED, pd.DataFrame([row]))
                store.upsert(batch)
            body = api.get("/v1/users/fan/recommendations", params={"k": 5}).json()
            reasons = {}
            for item in body["items"]:
                movie = store.vertex(VertexKind.MOVIE, item["movie"])
                assert movie is not None and item["title"] == movie["title"]
                assert item["year"] == movie["year"]
                path = store.explain("fan", item["movie"])
                if path is not None:
                    assert item["explanation"] == path.text
                reasons[item["movie"]] = item["explanation"]
            shown.append(reasons)
    assert shown[0] == shown[1] == shown[2] and shown[3] == shown[4] == shown[5]
    assert shown[2]["5"] != shown[3]["5"] and "Airplane!" in shown[3]["5"]  # Toy Story


def test_an_app_served_from_a_second_loop_logs_through_the_threaded_client(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    """The slate log's asyncio client belongs to the loop the app started on; a second client
    of the same app (its own event loop, as a second TestClient has) gets every slate logged
    too, through the threadpool, instead of failing on another loop's connections."""
    from fastapi.testclient import TestClient

    client, prefix = redis_cp
    with make_client(tmp_path, store, redis_cp) as first:
        second = TestClient(first.app)
        bodies = [api.get("/v1/users/fan/recommendations?k=3").json() for api in (first, second)]
        bodies.append(first.get("/v1/users/fan/recommendations?k=3").json())
    assert [b["logged"] for b in bodies] == [True, True, True]
    log = RecLog(client, prefix, 60)
    assert all(log.get(b["recommendation_id"]) is not None for b in bodies)


@pytest.mark.parametrize(
    ("inline", "twin", "logger"),
    [
        (None, True, "alog_served"),
        (True, True, "alog_served"),
        (True, False, "log_served"),
        (False, True, "log_served"),
    ],
)
def test_inline_requests_await_the_redis_call_on_the_loop(
    tmp_path: Path,
    store: LocalGraphStore,
    redis_cp: tuple[redis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    inline: bool | None,
    twin: bool,
    logger: str,
) -> None:
    """Settings.inline_requests (unset: on over the embedded graph): the slate is ranked and
    explained on the event loop and its log awaited there through the asyncio client
    (serving.redis_async); without one (``twin`` False) the log's call alone runs in the
    threadpool; off, all of it runs in one threadpool hop. The answer and the log are the
    same."""
    import threading

    import serving.app as app_module
    import serving.routes.recommendations as route
    from serving.presentation import Presenter

    where: dict[str, int] = {}
    originals = {name: getattr(route, name) for name in ("log_served", "alog_served")}
    present = Presenter.present

    def logging_thread(*args: object, **kwargs: object) -> object:
        where["log_served"] = threading.get_ident()
        return originals["log_served"](*args, **kwargs)

    async def awaiting_thread(*args: object, **kwargs: object) -> object:
        where["alog_served"] = threading.get_ident()
        return await originals["alog_served"](*args, **kwargs)

    def presenting_thread(self: Presenter, *args: object, **kwargs: object) -> object:
        where["present"] = threading.get_ident()
        return present(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(route, "log_served", logging_thread)
    monkeypatch.setattr(route, "alog_served", awaiting_thread)
    monkeypatch.setattr(Presenter, "present", presenting_thread)
    if not twin:
        monkeypatch.setattr(app_module, "async_twin", lambda client: None)
    with make_client(tmp_path, store, redis_cp, inline_requests=inline) as api:
        assert api.app.state.services.inline is (inline is not False)  # type: ignore[attr-defined]
        res = api.get("/v1/users/fan/recommendations", params={"k": 4})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["items"][0]["movie"] == "3" and body["logged"] is True
    assert ("Ridley Scott" in body["items"][0]["explanation"]) and len(body["items"]) == 4
    assert set(where) == {logger, "present"}
    assert (where[logger] != where["present"]) is (logger == "log_served" and inline is not False)
    client, prefix = redis_cp
    logged = RecLog(client, prefix, 60).get(body["recommendation_id"])
    assert logged is not None and logged.slate == [i["movie"] for i in body["items"]]
