"""serving.plex.plextv against the plex.tv and PMS stand-ins: the server's people, each signed
in with their own server token, and sharing filters that hide the others' lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plexapi.myplex import MyPlexAccount

from serving.plex.client import PlexSettings, connect
from serving.plex.plextv import PlexPeople, PlexTvSession, hiding_filter, parse_filter, user_label
from tests.serving.plex.plex_test_server import PlexTestServer
from tests.serving.plex.plextv_test_server import PlexTvTestServer, WatchlistItem


@pytest.fixture
def tv(plex: PlexTestServer) -> Iterator[PlexTvTestServer]:
    server = PlexTvTestServer(plex)
    server.add_user(2, "bob", filter_movies="contentRating!=R")
    server.add_user(3, "carol", home=True)
    with server:
        yield server


def test_people_each_signed_in_with_their_own_token(
    plex: PlexTestServer, tv: PlexTvTestServer
) -> None:
    server = connect(PlexSettings(plex.url, plex.token, 5.0, tv.url))
    people = PlexPeople(server).people()
    assert [(p.name, p.role) for p in people] == [
        ("alice", "owner"),
        ("bob", "friend"),
        ("carol", "home"),
    ]
    tokens = [p.server._token for p in people if p.server is not None]
    assert tokens == [plex.token, "server-token-bob", "server-token-carol"]
    # carol is a home user: no shared-server entry, her token came from switching + resources
    assert ("POST", "/api/home/users/3/switch") in [(m, p) for m, p, _ in tv.requests]
    assert people[1].filter_movies == "contentRating!=R"


def test_hide_others_keeps_a_person_s_own_restrictions(
    plex: PlexTestServer, tv: PlexTvTestServer
) -> None:
    server = connect(PlexSettings(plex.url, plex.token, 5.0, tv.url))
    finder = PlexPeople(server)
    people = finder.people()
    labels = [p.label for p in people]
    assert finder.hide_others(people, labels) == []
    assert parse_filter(tv.users[2].filter_movies) == [
        ("contentRating!", ["R"]),
        ("label!", ["marquee-for-alice", "marquee-for-carol"]),
    ]
    assert plex.movie_filters[3] == "label!=marquee-for-alice%2Cmarquee-for-bob"
    # a second run replaces Marquee's entries instead of piling them up
    again = finder.people()
    assert finder.hide_others(again, labels) == []
    assert tv.users[2].filter_movies.count("marquee-for-alice") == 1


def test_filters_refused_are_reported(plex: PlexTestServer, tv: PlexTvTestServer) -> None:
    tv.forbid_filters = True
    server = connect(PlexSettings(plex.url, plex.token, 5.0, tv.url))
    finder = PlexPeople(server)
    people = finder.people()
    assert finder.hide_others(people, [p.label for p in people]) == ["bob", "carol"]


def test_hiding_filter_and_labels() -> None:
    assert user_label("Bob Smith") == "marquee-for-bob-smith"
    assert hiding_filter("label!=mine%2Cmarquee-for-x|label=kids", ["marquee-for-y"]) == {
        "label!": ["mine", "marquee-for-y"],
        "label": ["kids"],
    }


def test_watchlist_through_plexapi(tv: PlexTvTestServer) -> None:
    tv.users[2].watchlist = [WatchlistItem("5d77", "Alien", 1979, ["imdb://tt0078748"])]
    account = MyPlexAccount(token="tv-token-bob", session=PlexTvSession(tv.url))
    assert account.username == "bob"
    (movie,) = account.watchlist()
    assert (movie.title, movie.year) == ("Alien", 1979)
    assert [g.id for g in movie.guids] == ["imdb://tt0078748"]
    account.removeFromWatchlist([movie])
    assert tv.users[2].watchlist == []
    with pytest.raises(Exception, match="401"):
        MyPlexAccount(token="wrong", session=PlexTvSession(tv.url))
