"""Plex library + history -> graph, run with the real plexapi client against the Plex stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plexapi.base
import pytest
from plexapi.server import PlexServer

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStoreError, UpsertReport
from serving.feedback.sink import InMemoryFeedbackSink
from serving.plex.client import PlexError
from serving.plex.state import load_state
from serving.plex.sync import PlexSync
from serving.schemas.feedback import FeedbackType
from tests.serving.plex.plex_test_server import FakeHistory, PlexTestServer


def edges(store: LocalGraphStore, kind: EdgeKind) -> set[tuple[str, str]]:
    frame = store.edge_frame(kind)
    return set(zip(frame["src"], frame["dst"], strict=True))


def test_full_sync_builds_movies_people_genres_and_user_edges(
    server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    sink = InMemoryFeedbackSink()
    report = PlexSync(server, store, state_file, sink=sink).run()
    assert (report.movies, report.new_movies) == (3, 3)

    toy = store.vertex(VertexKind.MOVIE, "imdb-tt0114709")
    assert toy is not None
    assert (toy["title"], toy["year"], toy["tmdb_id"], toy["studio"]) == (
        "Toy Story",
        1995,
        862,
        "Pixar",
    )
    assert toy["genres"] == "Animation|Comedy" and toy["countries"] == "USA"
    assert str(toy["poster_url"]).endswith("/library/metadata/101/thumb/1600000000")
    assert "token" not in str(toy["poster_url"]).lower()
    assert store.vertex(VertexKind.MOVIE, "tmdb-949") is None  # Heat has an IMDb id: imdb- key
    assert store.vertex(VertexKind.MOVIE, "imdb-tt0113277") is not None
    assert store.vertex(VertexKind.MOVIE, "plex-103") is not None  # no external ids

    # all four actors (the listing carries three; the details carry all), with billing order
    acted = store.edge_frame(EdgeKind.ACTED_IN)
    toy_cast = acted[acted["dst"] == "imdb-tt0114709"].sort_values("order")
    assert list(toy_cast["src"]) == ["tom_hanks", "tim_allen", "don_rickles", "jim_varney"]
    assert ("john_lasseter", "imdb-tt0114709") in edges(store, EdgeKind.DIRECTED)
    assert ("andrew_stanton", "imdb-tt0114709") in edges(store, EdgeKind.WROTE)
    assert ("imdb-tt0114709", "animation") in edges(store, EdgeKind.IN_GENRE)
    assert store.vertex(VertexKind.PERSON, "tom_hanks") == {"key": "tom_hanks", "name": "Tom Hanks"}

    assert edges(store, EdgeKind.WATCHED) == {
        ("plex-alice", "imdb-tt0114709"),
        ("plex-bob", "imdb-tt0114709"),
        ("plex-bob", "imdb-tt0113277"),
    }
    rated = store.edge_frame(EdgeKind.RATED)
    assert list(rated["src"]) == ["plex-alice"] and list(rated["rating"]) == [4.5]  # 9/10 -> 4.5

    kinds = sorted(e.type.value for e in sink.events)
    assert kinds == ["rated", "watched", "watched", "watched"]
    assert {e.source for e in sink.events} == {"plex-history", "plex-sync"}

    state = load_state(state_file)
    assert state.movie_keys == {"101": "imdb-tt0114709", "102": "imdb-tt0113277", "103": "plex-103"}
    assert state.library_updated_at == {"1": 1_600_000_000}
    assert state.history_viewed_at == 1_600_000_400  # the owner's lastViewedAt, newer than history
    assert state.rated_at == 1_600_000_500


def test_maps_onto_existing_movies_by_imdb_tmdb_then_title_year(
    server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    seed = GraphBatch()
    seed.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": ["1", "6", "500"],
                "title": ["Toy Story", "Heat", "Home Movie"],
                "year": [1995, 1995, 2020],
                "imdb_id": ["tt0114709", "", ""],
                "tmdb_id": [0, 949, 0],
                "genres": ["Adventure|Animation", "", ""],
                "poster_url": ["http://example.test/toy.jpg", "", ""],
            }
        ),
    )
    store.upsert(seed)
    report = PlexSync(server, store, state_file).run()
    assert (report.movies, report.new_movies) == (3, 0)
    assert store.counts()["movies"] == 3
    toy = store.vertex(VertexKind.MOVIE, "1")
    assert toy is not None
    assert toy["poster_url"] == "http://example.test/toy.jpg"  # kept
    assert toy["genres"] == "Adventure|Animation"  # kept
    assert toy["tmdb_id"] == 862 and toy["studio"] == "Pixar"  # filled in from Plex
    heat = store.vertex(VertexKind.MOVIE, "6")
    assert heat is not None and heat["imdb_id"] == "tt0113277"
    assert ("plex-bob", "6") in edges(store, EdgeKind.WATCHED)
    assert ("tom_hanks", "500") in edges(store, EdgeKind.ACTED_IN)
    assert load_state(state_file).movie_keys == {"101": "1", "102": "6", "103": "500"}


def test_incremental_sync_reads_only_what_changed(
    plex: PlexTestServer, server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    sink = InMemoryFeedbackSink()
    PlexSync(server, store, state_file, sink=sink).run()
    before = store.counts()

    plex.requests.clear()
    quiet = PlexSync(server, store, state_file, sink=sink).run()
    assert (quiet.movies, quiet.watched, quiet.rated, quiet.events_new) == (0, 0, 0, 0)
    assert store.counts() == before
    assert not any(p.startswith("/library/metadata/") for p in plex.paths())
    filters = [q for m, p, q in plex.requests if p == "/library/sections/1/all"]
    assert {"updatedAt>>": ["1600000000"]}.items() <= filters[0].items()
    assert {"lastRatedAt>>": ["1600000500"]}.items() <= filters[1].items()
    history_q = [q for m, p, q in plex.requests if p == "/status/sessions/history/all"]
    assert history_q[0]["viewedAt>"] == ["1600000400"]

    # Heat gains an actor, Bob rewatches it, nothing else changes
    heat = plex.movies[102]
    heat.roles.append("Val Kilmer")
    heat.updated_at = 1_700_000_000
    plex.history.append(FakeHistory(2, 102, 1_700_000_100))
    plex.requests.clear()
    report = PlexSync(server, store, state_file, sink=sink).run()
    assert report.movies == 1
    assert [p for p in plex.paths() if p.startswith("/library/metadata/")] == [
        "/library/metadata/102"
    ]
    assert ("val_kilmer", "imdb-tt0113277") in edges(store, EdgeKind.ACTED_IN)
    watched = store.edge_frame(EdgeKind.WATCHED).set_index(["src", "dst"])
    assert watched.loc[("plex-bob", "imdb-tt0113277"), "timestamp"] == 1_700_000_100
    assert report.events_new == 1 and sink.events[-1].type is FeedbackType.WATCHED
    state = load_state(state_file)
    assert state.library_updated_at == {"1": 1_700_000_000}
    assert state.history_viewed_at == 1_700_000_100


def test_paged_listings_are_read_whole(
    plex: PlexTestServer,
    server: PlexServer,
    store: LocalGraphStore,
    state_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plexapi.base, "X_PLEX_CONTAINER_SIZE", 2)
    report = PlexSync(server, store, state_file).run()
    assert report.movies == 3
    listings = [p for p in plex.paths() if p == "/library/sections/1/all"]
    # all movies and viewed movies: 3 items, two pages each; rated movies: 1 item, one page
    assert len(listings) == 5


def test_server_failure_midway_writes_nothing(
    plex: PlexTestServer, server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    plex.fail_path = "/status/sessions/history"
    with pytest.raises(PlexError, match=r"rejected a request while reading watch history: \(500\)"):
        PlexSync(server, store, state_file).run()
    assert sum(store.counts().values()) == 0
    assert not state_file.exists()


class RefusingStore(LocalGraphStore):
    """A graph store whose writes fail (like a database that went away)."""

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        raise GraphStoreError("write refused")


def test_failed_upsert_keeps_the_old_watermarks(
    plex: PlexTestServer, server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    PlexSync(server, store, state_file).run()
    saved = state_file.read_text()
    plex.movies[102].updated_at = 1_700_000_000
    sink = InMemoryFeedbackSink()
    with pytest.raises(GraphStoreError):
        PlexSync(server, RefusingStore(), state_file, sink=sink).run()
    assert state_file.read_text() == saved
    assert len(sink) == 0


def test_unreadable_state_file_is_named(
    server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"history_viewed_at": 1,\n oops}')
    with pytest.raises(ValueError, match=rf"{state_file}:2: not valid JSON"):
        PlexSync(server, store, state_file).run()
    assert sum(store.counts().values()) == 0


def test_placeholder_library_is_not_synced(
    plex: PlexTestServer, server: PlexServer, store: LocalGraphStore, state_file: Path
) -> None:
    plex.sections[3] = {"title": "Recommendations", "type": "movie", "location": "/recs"}
    plex.movies[104] = type(plex.movies[101])(104, "Placeholder", 2001, section=3)
    PlexSync(server, store, state_file).run()
    assert "104" not in load_state(state_file).movie_keys
    assert json.loads(state_file.read_text())["library_updated_at"] == {"1": 1_600_000_000}
