"""The cards' "Add to Plex watchlist" and "On your watchlist", through plexapi's MyPlexAccount
against the plex.tv stand-in (tests/serving/plex/plextv_test_server.py) linked to the Plex
Media Server stand-in: owner, home user, friend; found by library guid or Discover search;
plex.tv failing stores nothing and never shows a token."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from serving.app import create_app
from serving.plex.ids import user_key
from serving.plex.watchlist import PLEX_USER_PREFIX
from tests.serving.conftest import AUTH, make_settings
from tests.serving.plex.plex_test_server import PlexTestServer, sample_server
from tests.serving.plex.plextv_test_server import PlexTvTestServer, WatchlistItem
from tests.serving.web.test_pages import stored_events

WATCH_BUTTON = re.compile(r'id="card-(m\d+)"(?:(?!</article>).)*data-action="watchlist"', re.S)


def card_html(page: str, movie: str) -> str:
    start = page.index(f'id="card-{movie}"')
    return page[start : page.index("</article>", start)]


@pytest.fixture
def plex() -> Iterator[PlexTestServer]:
    with sample_server() as server:
        yield server


@pytest.fixture
def tv(plex: PlexTestServer) -> Iterator[PlexTvTestServer]:
    """Owner alice, friend bob, home user carol; Discover knows "Movie 3" (1971) and a 2001
    namesake, and "Movie 9" (2013)."""
    server = PlexTvTestServer(plex)
    server.add_user(2, "bob")
    server.add_user(3, "carol", home=True)
    server.catalogue = [
        WatchlistItem("aa03", "Movie 3", 2001),
        WatchlistItem("bb03", "Movie 3", 1971),
        WatchlistItem("cc09", "Movie 9", 2013),
    ]
    with server:
        yield server


@pytest.fixture
def api(
    tmp_path: Path,
    web_store: LocalGraphStore,
    rcp: tuple[redis.Redis, str],
    plex: PlexTestServer,
    tv: PlexTvTestServer,
) -> Iterator[TestClient]:
    client, prefix = rcp
    settings = make_settings(
        tmp_path, prefix, plex_url=plex.url, plex_token=plex.token, plex_tv_url=tv.url
    )
    state = tmp_path / "home" / "plex" / "state.json"  # the Plex sync mapped Toy Story to m2
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"version": 1, "movie_keys": {"101": "m2"}}))
    with TestClient(create_app(settings, store=web_store, redis_client=client)) as web:
        yield web


def test_owner_adds_from_a_card_and_the_badge_follows(
    api: TestClient, tv: PlexTvTestServer, rcp: tuple[redis.Redis, str]
) -> None:
    page = api.get("/users/plex-alice").text
    assert len(WATCH_BUTTON.findall(page)) >= 10  # every card offers it
    assert 'aria-label="Add to Plex watchlist: Movie' in page
    res = api.post(
        "/users/plex-alice/movies/m3/actions", json={"action": "watchlist"}, headers=AUTH
    )
    assert res.status_code == 200, res.text
    assert res.json()["message"] == "Added to your Plex watchlist."
    # found by a Discover search on the title, the 1971 namesake (the graph's year)
    assert [(w.rating_key, w.title, w.year) for w in tv.owner.watchlist] == [
        ("bb03", "Movie 3", 1971)
    ]
    client, prefix = rcp
    events = stored_events(client, prefix)
    assert [(e.type.value, e.user, e.movie, e.source) for e in events] == [
        ("click", "plex-alice", "m3", "web-watchlist")
    ]
    card = card_html(api.get("/users/plex-alice?q=Movie 3").text, "m3")
    assert "On your watchlist" in card and 'data-action="watchlist"' not in card
    again = api.post(
        "/users/plex-alice/movies/m3/actions", json={"action": "watchlist"}, headers=AUTH
    )
    assert again.json()["message"] == "Already on your Plex watchlist."
    assert len(tv.owner.watchlist) == 1


def test_a_library_movie_is_found_by_its_plex_guid(api: TestClient, tv: PlexTvTestServer) -> None:
    """m2 is Toy Story in the Plex library (the sync's state): its plex:// guid is used."""
    res = api.post(
        "/users/plex-alice/movies/m2/actions", json={"action": "watchlist"}, headers=AUTH
    )
    assert res.status_code == 200, res.text
    assert [w.rating_key for w in tv.owner.watchlist] == ["5d7768"]
    assert not any(path == "/library/search" for _, path, _ in tv.requests)


def test_home_user_badges_come_from_their_plex_tv_watchlist(
    api: TestClient, tv: PlexTvTestServer
) -> None:
    tv.users[3].watchlist = [
        WatchlistItem("x1", "Toy Story", 1995, ["tmdb://862"]),  # the graph's m2, by TMDB id
        WatchlistItem("x2", "Movie 5", 1985),  # m5, by title and year
        WatchlistItem("x3", "Movie 6", 1900),  # a year the graph does not have: no badge
    ]
    page = api.get("/users/plex-carol").text
    badged = {
        m
        for m in re.findall(r'id="card-(m\d+)"', page)
        if "On your watchlist" in card_html(page, m)
    }
    assert badged == {"m2", "m5"} & set(re.findall(r'id="card-(m\d+)"', page))
    assert "m2" in badged or "m5" in badged  # at least one is on the page (20 of 40 shown)
    res = api.post(
        "/users/plex-carol/movies/m9/actions", json={"action": "watchlist"}, headers=AUTH
    )
    assert res.status_code == 200, res.text
    assert [w.rating_key for w in tv.users[3].watchlist][-1] == "cc09"
    assert tv.owner.watchlist == []  # carol's list, reached by switching to her


def test_a_friend_gets_no_button_and_nothing_is_stored(
    api: TestClient, tv: PlexTvTestServer, rcp: tuple[redis.Redis, str]
) -> None:
    assert 'data-action="watchlist"' not in api.get("/users/plex-bob").text
    before = len(tv.requests)
    assert 'data-action="watchlist"' not in api.get("/users/fan").text  # not a Plex person
    assert len(tv.requests) == before  # nor asked about: only the sync's plex-* users are
    assert user_key("Bob").startswith(PLEX_USER_PREFIX)
    res = api.post("/users/plex-bob/movies/m3/actions", json={"action": "watchlist"}, headers=AUTH)
    assert res.status_code == 502 and "not this Plex server's owner" in res.text
    client, prefix = rcp
    assert stored_events(client, prefix) == []


def test_plex_tv_failing_shows_an_error_and_changes_nothing(
    api: TestClient,
    tv: PlexTvTestServer,
    plex: PlexTestServer,
    rcp: tuple[redis.Redis, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "/users/plex-alice/movies/{}/actions"
    missing = api.post(url.format("m7"), json={"action": "watchlist"}, headers=AUTH)
    assert missing.status_code == 502 and "plex.tv has no movie Movie 7" in missing.text
    tv.fail_watchlist = True
    failed = api.post(url.format("m3"), json={"action": "watchlist"}, headers=AUTH)
    assert failed.status_code == 502 and "rejected a request" in failed.text
    assert tv.owner.watchlist == []
    client, prefix = rcp
    assert stored_events(client, prefix) == []
    for text in (missing.text, failed.text, caplog.text):
        assert plex.token not in text and "tv-token" not in text
    no_token = api.post(url.format("m3"), json={"action": "watchlist"})
    assert no_token.status_code == 401


def test_without_plex_there_is_no_button_and_the_action_is_refused(web: TestClient) -> None:
    assert 'data-action="watchlist"' not in web.get("/users/fan").text
    res = web.post("/users/fan/movies/m3/actions", json={"action": "watchlist"}, headers=AUTH)
    assert res.status_code == 409 and "Plex is not configured" in res.text


def test_plex_tv_down_still_renders_the_page(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str], plex: PlexTestServer
) -> None:
    client, prefix = rcp
    settings = make_settings(
        tmp_path, prefix, plex_url=plex.url, plex_token=plex.token, plex_tv_url="http://127.0.0.1:9"
    )
    with TestClient(create_app(settings, store=web_store, redis_client=client)) as web:
        page = web.get("/users/plex-alice")
    assert page.status_code == 200 and len(re.findall(r'class="card"', page.text)) >= 10
    assert 'data-action="watchlist"' not in page.text
