"""A TMDB v3 API stand-in for tests: stdlib HTTP on 127.0.0.1 answering /3/movie/{id}
(with append_to_response=credits,keywords) and the paged /3/movie/changes in TMDB's JSON shapes,
with TMDB's error bodies (401 status_code 7, 404 status_code 34) and 429 with Retry-After."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stub_server import StubHTTPServer


def movie_json(tmdb_id: int, title: str, **extra: Any) -> dict[str, Any]:
    """A movie as GET /3/movie/{id}?append_to_response=credits,keywords returns it."""
    body: dict[str, Any] = {
        "adult": False,
        "backdrop_path": "/bd.jpg",
        "genres": [{"id": 16, "name": "Animation"}],
        "id": tmdb_id,
        "imdb_id": f"tt{tmdb_id:07d}",
        "original_language": "en",
        "original_title": title,
        "overview": f"The story of {title}.",
        "popularity": 12.5,
        "poster_path": f"/poster{tmdb_id}.jpg",
        "production_companies": [
            {"id": 3, "logo_path": "/p.png", "name": "Pixar", "origin_country": "US"}
        ],
        "production_countries": [{"iso_3166_1": "US", "name": "United States of America"}],
        "release_date": "1995-10-30",
        "runtime": 81,
        "spoken_languages": [{"english_name": "English", "iso_639_1": "en", "name": "English"}],
        "status": "Released",
        "title": title,
        "vote_average": 7.9,
        "vote_count": 17000,
        "credits": {
            "cast": [
                {
                    "adult": False,
                    "gender": 2,
                    "id": 31,
                    "known_for_department": "Acting",
                    "name": "Tom Hanks",
                    "original_name": "Tom Hanks",
                    "character": "Woody (voice)",
                    "credit_id": "52fe4284c3a36847f8024f95",
                    "order": 0,
                },
                {
                    "adult": False,
                    "gender": 2,
                    "id": 12898,
                    "known_for_department": "Acting",
                    "name": "Tim Allen",
                    "original_name": "Tim Allen",
                    "character": "Buzz Lightyear (voice)",
                    "credit_id": "52fe4284c3a36847f8024f99",
                    "order": 1,
                },
            ],
            "crew": [
                {"id": 7879, "name": "John Lasseter", "department": "Directing", "job": "Director"},
                {"id": 7, "name": "Andrew Stanton", "department": "Writing", "job": "Screenplay"},
                {
                    "id": 4949,
                    "name": "Randy Newman",
                    "department": "Sound",
                    "job": "Original Music Composer",
                },
                {"id": 1, "name": "Someone Else", "department": "Crew", "job": "Caterer"},
            ],
        },
        "keywords": {"keywords": [{"id": 931, "name": "jealousy"}, {"id": 4290, "name": "toy"}]},
    }
    body.update(extra)
    return body


class TmdbTestServer(StubHTTPServer):
    """``with TmdbTestServer() as tmdb:``; ``tmdb.url`` is the /3 base URL."""

    def __init__(self, api_key: str = "tmdb-key-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.movies: dict[int, dict[str, Any]] = {}
        self.changes: list[int] = []  # ids listed by /movie/changes
        self.page_size = 2
        self.throttle: list[str | None] = []  # Retry-After values of the next 429 answers
        self.fail_after: int | None = None  # answer 500 once this many movies were served
        self.requests: list[str] = []  # paths asked (no query)
        self.queries: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return super().url + "/3"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            tmdb = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    tmdb: TmdbTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        t = self.tmdb
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        t.requests.append(parts.path)
        t.queries.append(q)
        bearer = self.headers.get("Authorization", "")
        if q.get("api_key") != t.api_key and bearer != f"Bearer {t.api_key}":
            self._json(
                401,
                {
                    "status_code": 7,
                    "status_message": "Invalid API key: You must be granted a valid key.",
                    "success": False,
                },
            )
            return
        if t.throttle:
            retry = t.throttle.pop(0)
            self._json(
                429,
                {"status_code": 25, "status_message": "Your request count is over the limit."},
                {"Retry-After": retry} if retry is not None else {},
            )
            return
        if parts.path == "/3/movie/changes":
            page = int(q.get("page", "1"))
            ids = t.changes
            n = t.page_size
            pages = max(1, -(-len(ids) // n))
            rows = [{"id": i, "adult": False} for i in ids[(page - 1) * n : page * n]]
            self._json(
                200,
                {"results": rows, "page": page, "total_pages": pages, "total_results": len(ids)},
            )
            return
        m = re.fullmatch(r"/3/movie/(\d+)", parts.path)
        if m is None or int(m[1]) not in t.movies:
            self._json(
                404,
                {
                    "success": False,
                    "status_code": 34,
                    "status_message": "The resource you requested could not be found.",
                },
            )
            return
        served = sum(1 for p in t.requests if re.fullmatch(r"/3/movie/\d+", p))
        if t.fail_after is not None and served > t.fail_after:
            self._json(500, {"status_code": 11, "status_message": "Internal error."})
            return
        body = dict(t.movies[int(m[1])])
        wanted = set(q.get("append_to_response", "").split(","))
        for part in ("credits", "keywords"):
            if part not in wanted:
                body.pop(part, None)
        self._json(200, body)
