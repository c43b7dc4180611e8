"""A small Radarr v3 API stand-in for tests: stdlib HTTP on 127.0.0.1, Radarr-shaped JSON.

Checks X-Api-Key (401 otherwise), answers lookup, movie list/add (400 MovieExistsValidator for a
movie already added, as Radarr does), quality profiles and root folders, and can hang.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stub_server import StubHTTPServer

CATALOG = {
    862: {"title": "Toy Story", "year": 1995, "imdbId": "tt0114709"},
    949: {"title": "Heat", "year": 1995, "imdbId": "tt0113277"},
}


class RadarrTestServer(StubHTTPServer):
    """Start with ``with RadarrTestServer() as radarr:``; ``radarr.url`` and ``radarr.api_key``."""

    def __init__(self, api_key: str = "radarr-key-456") -> None:
        super().__init__()
        self.api_key = api_key
        self.movies: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.profiles = [{"id": 1, "name": "Any"}, {"id": 4, "name": "HD-1080p"}]
        self.root_folders = [{"id": 1, "path": "/movies", "freeSpace": 10**12}]
        self.hang = False

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            radarr = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    radarr: RadarrTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        r = self.radarr
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("X-Api-Key") != r.api_key:
            self._json(401, {"message": "Unauthorized"})
            return
        if r.hang:
            r._release.wait(30)
            return
        path = parts.path
        if method == "GET" and path == "/api/v3/movie/lookup/tmdb":
            tmdb = int(q.get("tmdbId", "0"))
            if tmdb not in CATALOG:
                self._json(404, {"message": "Movie not found"})
                return
            self._json(
                200,
                {"tmdbId": tmdb, "images": [], "minimumAvailability": "released", **CATALOG[tmdb]},
            )
        elif method == "GET" and path == "/api/v3/movie":
            movies = r.movies
            if "tmdbId" in q:
                movies = [m for m in movies if m["tmdbId"] == int(q["tmdbId"])]
            self._json(200, movies)
        elif method == "GET" and path == "/api/v3/qualityprofile":
            self._json(200, r.profiles)
        elif method == "GET" and path == "/api/v3/rootfolder":
            self._json(200, r.root_folders)
        elif method == "POST" and path == "/api/v3/movie":
            body = json.loads(raw)
            r.posts.append(body)
            if any(m["tmdbId"] == body.get("tmdbId") for m in r.movies):
                self._json(
                    400,
                    [
                        {
                            "propertyName": "TmdbId",
                            "errorCode": "MovieExistsValidator",
                            "errorMessage": "This movie has already been added",
                        }
                    ],
                )
                return
            missing = [
                k
                for k in ("tmdbId", "title", "qualityProfileId", "rootFolderPath")
                if not body.get(k)
            ]
            if missing:
                self._json(
                    400,
                    [
                        {"propertyName": k, "errorMessage": f"'{k}' must not be empty"}
                        for k in missing
                    ],
                )
                return
            movie = {**body, "id": len(r.movies) + 1}
            r.movies.append(movie)
            self._json(201, movie)
        else:
            self._json(404, {"message": "NotFound"})
