"""The pages over HTTP (TestClient): what they show, the card actions, and their failures."""

from __future__ import annotations

import re

import redis
from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.deps import get_sink
from serving.feedback.store import RedisFeedbackStore
from serving.radarr.client import RadarrSettings
from serving.reclog import RecLog
from serving.routes.actions import get_radarr
from tests.serving.conftest import AUTH
from tests.serving.radarr.radarr_test_server import RadarrTestServer

CARD = re.compile(r'<article class="card" id="card-(m\d+)"')


def stored_events(client: redis.Redis, prefix: str) -> list:  # type: ignore[type-arg]
    return list(RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60)).events())


def shown(html: str) -> list[str]:
    return CARD.findall(html)


def test_index_lists_users_with_a_labelled_picker(web: TestClient) -> None:
    res = web.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert '<label for="user-input">User</label>' in res.text
    assert 'href="/users/fan"' in res.text
    go = web.get("/go", params={"user": "fan"}, follow_redirects=False)
    assert go.status_code == 303 and go.headers["location"] == "/users/fan"


def test_user_page_shows_cards_with_poster_reason_and_path(
    web: TestClient, web_store: LocalGraphStore
) -> None:
    res = web.get("/users/fan")
    assert res.status_code == 200, res.text
    movies = shown(res.text)
    assert len(movies) >= 10 and not {"m1", "m5"} & set(movies)  # fan rated m1 and m5
    assert res.text.count('class="poster"') >= len(movies)
    assert res.text.count('class="reason"') == len(movies)
    assert 'alt="Poster of Movie' in res.text and "% match" in res.text
    # a graph path for a movie sharing fan's liked movie's director (d1 directed m1, m5, m9 ...)
    path = web_store.explain("fan", "m9")
    assert path is not None and path.via_name == "Director 1"
    if "m9" in movies:
        assert "directed by Director 1" in res.text
    # everything a script needs is served from the package
    assert 'src="/static/marquee.js"' in res.text and "https://" not in res.text
    assert web.get("/static/marquee.js").status_code == 200


def test_filters_by_genre_decade_and_title(web: TestClient, web_store: LocalGraphStore) -> None:
    def genre_of(m: str) -> str:
        return str((web_store.vertex(VertexKind.MOVIE, m) or {})["genres"])

    drama = shown(web.get("/users/fan", params={"genre": "Drama"}).text)
    assert drama and all(genre_of(m) == "Drama" for m in drama)
    sixties = shown(web.get("/users/fan", params={"decade": 1960}).text)
    for m in sixties:
        year = int((web_store.vertex(VertexKind.MOVIE, m) or {})["year"])  # type: ignore[call-overload]
        assert 1960 <= year < 1970
    assert sixties
    titled = shown(web.get("/users/fan", params={"q": "movie 2"}).text)
    assert titled and all(m == "m2" or m.startswith("m2") for m in titled)


def test_movie_page_has_why_and_more_like_this(web: TestClient) -> None:
    res = web.get("/movies/m9", params={"user": "fan"})
    assert res.status_code == 200
    assert "Why fan might like it" in res.text and "Director 1" in res.text
    assert "More like this" in res.text and 'href="/movies/m13?user=fan"' in res.text
    assert "Shares directed by Director 1" in res.text
    assert web.get("/movies/nope").status_code == 404


def test_not_interested_is_stored_edged_and_never_shown_again(
    web: TestClient, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> None:
    first = shown(web.get("/users/fan").text)[0]
    url = f"/users/fan/movies/{first}/actions"
    assert web.post(url, json={"action": "not_interested"}).status_code == 401  # no token
    res = web.post(url, json={"action": "not_interested"}, headers=AUTH)
    assert res.status_code == 200, res.text
    assert res.json()["new"] == 1
    dismissed = web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")
    assert [n.key for n in dismissed] == [first]
    client, prefix = rcp
    stored = stored_events(client, prefix)
    assert [(e.type.value, e.user, e.movie, e.source) for e in stored] == [
        ("not_interested", "fan", first, "web")
    ]
    assert first not in shown(web.get("/users/fan").text)
    more = web.get("/users/fan/cards", params={"exclude": first, "n": 2})
    assert len(shown(more.text)) == 2 and first not in shown(more.text)


def test_rating_is_stored_and_a_bad_action_changes_nothing(
    web: TestClient, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> None:
    ok = web.post(
        "/users/fan/movies/m9/actions", json={"action": "rate", "rating": 4}, headers=AUTH
    )
    assert ok.status_code == 200 and ok.json()["message"] == "Rated 4 of 5 stars."
    rated = {n.key for n in web_store.neighbours(VertexKind.USER, "fan", EdgeKind.RATED, "out")}
    assert "m9" in rated
    for body, path in [
        ({"action": "rate", "rating": 9}, "m9"),
        ({"action": "rate"}, "m9"),
        ({"action": "not_interested"}, "no-such-movie"),
    ]:
        res = web.post(f"/users/fan/movies/{path}/actions", json=body, headers=AUTH)
        assert res.status_code == 422, res.text
    client, prefix = rcp
    assert [e.movie for e in stored_events(client, prefix)] == ["m9"]
    assert not web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")


class DownSink:
    """A feedback sink whose store is unreachable."""

    def submit(self, events: object) -> int:
        raise redis.ConnectionError("down")


def test_failed_feedback_store_writes_no_edge(web: TestClient, web_store: LocalGraphStore) -> None:
    """The feedback cannot be stored: 503 with a message, and the graph keeps no edge."""
    web.app.dependency_overrides[get_sink] = DownSink  # type: ignore[attr-defined]
    res = web.post("/users/fan/movies/m9/actions", json={"action": "not_interested"}, headers=AUTH)
    assert res.status_code == 503 and "unavailable" in res.json()["detail"]
    assert not web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")


def test_download_now_adds_to_radarr_then_stores_feedback(
    web: TestClient, rcp: tuple[redis.Redis, str]
) -> None:
    client, prefix = rcp
    url = "/users/fan/movies/m2/actions"
    res = web.post(url, json={"action": "download"}, headers=AUTH)
    assert res.status_code == 409 and "not configured" in res.text  # no Radarr yet
    with RadarrTestServer() as radarr:
        configured = RadarrSettings(radarr.url, radarr.api_key)
        web.app.dependency_overrides[get_radarr] = lambda: configured  # type: ignore[attr-defined]
        assert 'data-action="download"' not in web.get("/users/fan").text  # settings say no
        res = web.post(url, json={"action": "download"}, headers=AUTH)
        assert res.status_code == 200, res.text
        assert res.json()["message"] == "Radarr is searching for it."
        assert [m["tmdbId"] for m in radarr.movies] == [862]
        no_id = web.post("/users/fan/movies/m7/actions", json={"action": "download"}, headers=AUTH)
        assert no_id.status_code == 502 and "no TMDB id" in no_id.text
        radarr.api_key = "changed"  # Radarr refuses: nothing stored
        refused = web.post(
            "/users/fan/movies/m4/actions", json={"action": "download"}, headers=AUTH
        )
        assert refused.status_code == 502 and "changed" not in refused.text
    events = stored_events(client, prefix)
    assert [(e.type.value, e.movie, e.source) for e in events] == [("click", "m2", "web-download")]
