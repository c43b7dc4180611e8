"""A local TMDB v3 test server: ``/3/movie/{id}`` and ``/3/search/movie`` answer like TMDB
(JSON with ``poster_path``; 401 with TMDB's status body for a wrong ``api_key``), and
``/t/p/w342/{file}`` serves the image. Requests are recorded for the tests."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.serving.web.image_server import png
from tests.stub_server import StubHTTPServer


class TmdbTestServer(StubHTTPServer):
    def __init__(self, api_key: str = "tmdb-key-789") -> None:
        super().__init__()
        self.api_key = api_key
        self.posters: dict[int, str] = {}  # tmdb id -> poster_path
        self.titles: dict[str, int] = {}  # lower-case title -> tmdb id
        self.requests: list[str] = []
        self.image = png((20, 120, 200))

    @property
    def api_url(self) -> str:
        return f"{self.url}/3"

    @property
    def image_url(self) -> str:
        return f"{self.url}/t/p/w342"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._send(status, json.dumps(data).encode(), "application/json;charset=utf-8")

            def do_GET(self) -> None:
                url = urlparse(self.path)
                server.requests.append(url.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.startswith("/t/p/"):
                    known = set(server.posters.values())
                    if url.path.removeprefix("/t/p/w342") in known:
                        self._send(200, server.image, "image/png")
                    else:
                        self._send(404, b"", "text/plain")
                    return
                if query.get("api_key") != server.api_key:
                    self._json(
                        401,
                        {
                            "status_code": 7,
                            "status_message": "Invalid API key: You must be granted a valid key.",
                            "success": False,
                        },
                    )
                    return
                if url.path.startswith("/3/movie/"):
                    tid = int(url.path.rsplit("/", 1)[1])
                    if tid not in server.posters:
                        self._json(
                            404,
                            {
                                "status_code": 34,
                                "success": False,
                                "status_message": "The resource you requested could not be found.",
                            },
                        )
                        return
                    self._json(200, {"id": tid, "poster_path": server.posters[tid]})
                    return
                if url.path == "/3/search/movie":
                    tid = server.titles.get(query.get("query", "").lower())
                    results = [{"id": tid, "poster_path": server.posters.get(tid)}] if tid else []
                    self._json(
                        200,
                        {
                            "page": 1,
                            "results": results,
                            "total_results": len(results),
                            "total_pages": 1,
                        },
                    )
                    return
                self._json(404, {"status_code": 34, "success": False})

        return Handler
