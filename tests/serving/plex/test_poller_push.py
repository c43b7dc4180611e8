"""The history poller and pushing recommendation lists, against the Plex stand-in."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from plexapi.server import PlexServer

from features.graph.local import LocalGraphStore
from serving.feedback.sink import InMemoryFeedbackSink
from serving.plex.client import PlexError
from serving.plex.ids import MovieIndex
from serving.plex.poller import HistoryPoller
from serving.plex.push import (
    PlexPusher,
    Recommendation,
    RecommendationFileError,
    load_recommendations,
)
from serving.plex.state import load_state
from serving.plex.sync import PlexSync
from tests.serving.plex.plex_test_server import FakeHistory, PlexTestServer

# -- poller -------------------------------------------------------------------------------------


def test_poller_emits_each_history_entry_once(
    plex: PlexTestServer, server: PlexServer, state_file: Path
) -> None:
    sink = InMemoryFeedbackSink()
    poller = HistoryPoller(server, sink, state_file)
    first = poller.poll_once()
    assert (first.events, first.new) == (3, 3)  # the episode entry is not a movie
    assert {(e.user, e.movie) for e in sink.events} == {
        ("plex-alice", "imdb-tt0114709"),
        ("plex-bob", "imdb-tt0114709"),
        ("plex-bob", "imdb-tt0113277"),
    }
    assert load_state(state_file).poll_viewed_at == 1_600_000_360  # newest movie entry

    again = poller.poll_once()
    assert again.new == 0
    assert [q.get("viewedAt>") for m, p, q in plex.requests if "history" in p][-1] == ["1600000360"]

    plex.history.append(FakeHistory(1, 102, 1_600_009_000))
    assert poller.poll_once().new == 1
    assert load_state(state_file).poll_viewed_at == 1_600_009_000


def test_poller_and_sync_give_the_same_ids(
    server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    sink = InMemoryFeedbackSink()
    PlexSync(server, store, state_file, sink=sink).run()
    index = MovieIndex.from_store(store, load_state(state_file).movie_keys)
    assert HistoryPoller(server, sink, state_file, index=index).poll_once().new == 0


def test_failed_poll_keeps_the_watermark(
    plex: PlexTestServer, server: PlexServer, state_file: Path
) -> None:
    sink = InMemoryFeedbackSink()
    poller = HistoryPoller(server, sink, state_file)
    poller.poll_once()
    saved = state_file.read_text()
    plex.history.append(FakeHistory(1, 102, 1_600_009_000))
    plex.fail_path = "/status/sessions/history"
    with pytest.raises(PlexError, match="while polling watch history"):
        poller.poll_once()
    assert state_file.read_text() == saved
    # run() logs failures and goes on; once the server is back the entry arrives
    assert poller.run(0.01, threading.Event(), max_polls=2) == 0
    plex.fail_path = None
    assert poller.run(0.01, threading.Event(), max_polls=1) == 1


# -- push ---------------------------------------------------------------------------------------

RECS = [
    Recommendation("imdb-tt0113277", 0.61, "same director"),
    Recommendation("imdb-tt0114709", 0.93, "you liked Toy Story 2"),
    Recommendation("not-in-plex", 0.99, "popular"),
]
KEYS = {"imdb-tt0114709": "101", "imdb-tt0113277": "102", "plex-103": "103"}


def test_push_collection_best_first_and_refresh(plex: PlexTestServer, server: PlexServer) -> None:
    pusher = PlexPusher(server, KEYS)
    result = pusher.push("alice", RECS)
    assert result.title == "Recommended for alice"
    assert result.pushed == ["imdb-tt0114709", "imdb-tt0113277"] and result.missing == [
        "not-in-plex"
    ]
    (coll,) = plex.collections.values()
    assert (coll.title, coll.items, coll.section) == ("Recommended for alice", [101, 102], 1)

    pusher.push("alice", [Recommendation("plex-103", 0.5)])
    pusher.push("bob", [Recommendation("imdb-tt0113277", 0.5)])
    by_title = {c.title: c.items for c in plex.collections.values()}
    assert by_title == {"Recommended for alice": [103], "Recommended for bob": [102]}

    pusher.push("alice", [])  # nothing to recommend: the stale list goes
    assert [c.title for c in plex.collections.values()] == ["Recommended for bob"]


def test_push_playlist_with_limit(plex: PlexTestServer, server: PlexServer) -> None:
    pusher = PlexPusher(server, KEYS)
    pusher.push("bob", RECS, mode="playlist", limit=1)
    pusher.push("bob", RECS, mode="playlist", limit=2)
    (pl,) = plex.playlists.values()
    assert (pl.title, pl.items) == ("Recommended for bob", [101, 102])


def test_push_to_a_missing_library_is_a_clear_error(server: PlexServer) -> None:
    with pytest.raises(PlexError, match="has no movie library named 'Films'"):
        PlexPusher(server, KEYS).push("alice", RECS, section="Films")


def test_load_recommendations(tmp_path: Path) -> None:
    path = tmp_path / "recs.json"
    path.write_text(
        json.dumps({"alice": [{"movie": 862, "score": 0.9, "reason": "why"}], "bob": []})
    )
    assert load_recommendations(path) == {"alice": [Recommendation("862", 0.9, "why")], "bob": []}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{\n  "alice": [,]\n}', ":2: not valid JSON"),
        ("[]", "expected an object mapping user names to lists"),
        ('{"alice": {}}', "'alice' must map to a list"),
        ('{"alice": [3]}', "'alice' entry 0: expected an object, got int"),
        ('{"alice": [{"score": 0.5}]}', "'alice' entry 0: 'movie' (a graph movie key) is missing"),
        (
            '{"alice": [{"movie": "1", "score": "high"}]}',
            "'alice' entry 0: 'score' must be a number",
        ),
        ('{"alice": [{"movie": "1", "score": 1.5}]}', "'score' must be within [0, 1], got 1.5"),
        ('{"alice": [{"movie": "1", "score": 0.5, "year": "1999"}]}', "'year' must be an integer"),
    ],
)
def test_bad_recommendation_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "recs.json"
    path.write_text(text)
    with pytest.raises(RecommendationFileError) as err:
        load_recommendations(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_recommendation_file(tmp_path: Path) -> None:
    with pytest.raises(RecommendationFileError, match="no such file"):
        load_recommendations(tmp_path / "nope.json")
