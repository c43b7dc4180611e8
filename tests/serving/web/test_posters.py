"""Posters: each source in order, against local servers that speak their protocols; the
generated poster when every source fails; the Plex token never leaves the server."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from features.graph.local import LocalGraphStore
from serving.app import create_app
from serving.posters import (
    MovieInfo,
    PosterService,
    TmdbPosters,
    UrlPosters,
    generated_poster,
)
from tests.serving.conftest import make_settings
from tests.serving.web.image_server import ImageServer, png
from tests.serving.web.tmdb_test_server import TmdbTestServer
from tests.stub_server import StubHTTPServer


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def test_dataset_url_poster_is_proxied_and_cached(web: TestClient, images: ImageServer) -> None:
    res = web.get("/posters/m3")
    assert res.status_code == 200 and res.headers["x-poster-source"] == "url"
    assert res.content == images.image
    assert web.get("/posters/m3").content == images.image
    assert images.hits["/img/3.png"] == 1  # the second answer came from the cache


@pytest.mark.parametrize("movie", ["m22", "m30", "m40"])  # not an image, 404, no URL
def test_every_source_failing_gives_a_generated_poster(web: TestClient, movie: str) -> None:
    res = web.get(f"/posters/{movie}")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    assert res.headers["x-poster-source"] == "generated"
    assert image_size(res.content) == (342, 513)


def test_generated_poster_is_drawn_per_movie() -> None:
    a = generated_poster(MovieInfo("1", "Alien", 1979))
    b = generated_poster(MovieInfo("2", "Heat", 1995))
    assert a != b and image_size(a) == image_size(b) == (342, 513)


def test_unreachable_source_falls_through(tmp_path: Path) -> None:
    client = httpx.Client(timeout=0.5)
    service = PosterService([UrlPosters(client)], tmp_path)
    got = service.poster(MovieInfo("x", "X", None, poster_url="http://127.0.0.1:1/x.jpg"))
    assert got.source == "generated"


def test_tmdb_poster_by_id_then_by_search(tmp_path: Path) -> None:
    with TmdbTestServer() as tmdb:
        tmdb.posters = {862: "/toy.png", 603: "/matrix.png"}
        tmdb.titles = {"the matrix": 603}
        client = httpx.Client(timeout=2)
        source = TmdbPosters(client, tmdb.api_key, tmdb.api_url, tmdb.image_url)
        service = PosterService([source, UrlPosters(client)], tmp_path)
        by_id = service.poster(MovieInfo("1", "Toy Story", 1995, tmdb_id=862))
        by_title = service.poster(MovieInfo("2", "The Matrix", 1999))
        missing = service.poster(MovieInfo("3", "Unknown Film", 2001))
        assert by_id.source == "tmdb" and by_id.data == tmdb.image
        assert by_title.source == "tmdb"
        assert missing.source == "generated"
        assert "/3/movie/862" in tmdb.requests and "/3/search/movie" in tmdb.requests
        wrong = TmdbPosters(client, "wrong-key", tmdb.api_url, tmdb.image_url)
        assert (
            PosterService([wrong], tmp_path / "w")
            .poster(MovieInfo("1", "Toy Story", 1995, tmdb_id=862))
            .source
            == "generated"
        )


def test_tmdb_configured_in_the_app(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> None:
    """TMDB_API_KEY set: a movie TMDB finds by title gets TMDB's poster before its own URL."""
    with TmdbTestServer() as tmdb:
        tmdb.posters = {77: "/m3.png"}
        tmdb.titles = {"movie 3": 77}
        client, prefix = rcp
        settings = make_settings(
            tmp_path,
            prefix,
            tmdb_api_key=tmdb.api_key,
            tmdb_api_url=tmdb.api_url,
            tmdb_image_url=tmdb.image_url,
        )
        with TestClient(create_app(settings, store=web_store, redis_client=client)) as api:
            got = api.get("/posters/m3")
            assert got.headers["x-poster-source"] == "tmdb" and got.content == tmdb.image
            assert api.get("/posters/m4").headers["x-poster-source"] == "url"  # TMDB lacks it


class PlexThumbs(StubHTTPServer):
    """The Plex Media Server's thumb endpoint: needs X-Plex-Token, 401 without."""

    token = "plex-token-123"
    image = png((10, 200, 10))

    def handler_class(self):  # type: ignore[no-untyped-def]
        from http.server import BaseHTTPRequestHandler

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                ok = self.headers.get("X-Plex-Token") == outer.token
                found = self.path == "/library/metadata/501/thumb"
                status = 401 if not ok else 200 if found else 404
                body = outer.image if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def test_plex_poster_first_and_token_stays_on_the_server(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> None:
    with PlexThumbs() as plex:
        client, prefix = rcp
        settings = make_settings(tmp_path, prefix, plex_url=plex.url, plex_token=plex.token)
        with TestClient(create_app(settings, store=web_store, redis_client=client)) as api:
            first = re.findall(r'data-movie="(m\d+)"', api.get("/users/fan").text)[0]
            # the Plex sync's state: Plex item 501 is this movie
            state = tmp_path / "home" / "plex" / "state.json"
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"version": 1, "movie_keys": {"501": first}}))
            got = api.get(f"/posters/{first}")
            assert got.headers["x-poster-source"] == "plex" and got.content == plex.image
            page = api.get("/users/fan").text
            assert plex.token not in page and plex.url not in page
            card = page[page.index(f'id="card-{first}"') :]
            card = card[: card.index("</article>")]
            assert "In your library" in card
            assert page.count("In your library") == 1


def test_tmdb_url_is_read_under_the_importers_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """TMDB_API_URL (what `marquee ingest tmdb` reads) sets the posters' TMDB base too; the
    old MARQUEE_TMDB_API_URL still works, and TMDB_API_URL wins when both are set."""
    from serving.settings import Settings

    monkeypatch.delenv("TMDB_API_URL", raising=False)
    monkeypatch.setenv("MARQUEE_TMDB_API_URL", "http://old.example/3")
    assert Settings().tmdb_api_url == "http://old.example/3"
    monkeypatch.setenv("TMDB_API_URL", "http://proxy.example/3")
    assert Settings().tmdb_api_url == "http://proxy.example/3"
