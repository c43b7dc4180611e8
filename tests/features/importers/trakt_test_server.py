"""A Trakt API v2 stand-in for tests: stdlib HTTP on 127.0.0.1 with Trakt's device-code OAuth
(/oauth/device/code, /oauth/device/token answering 400 while pending, /oauth/token refresh),
/users/settings and the paged /sync/history/movies and /sync/ratings/movies (X-Pagination-*
headers), Trakt's required headers (trakt-api-key, trakt-api-version 2) and 429 Retry-After."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stub_server import StubHTTPServer


def trakt_movie(title: str, year: int, *, imdb: str | None, tmdb: int | None, trakt: int) -> dict:
    return {
        "title": title,
        "year": year,
        "ids": {
            "trakt": trakt,
            "slug": title.lower().replace(" ", "-"),
            "imdb": imdb,
            "tmdb": tmdb,
        },
    }


class TraktTestServer(StubHTTPServer):
    """``with TraktTestServer() as trakt:``; ``trakt.url``."""

    def __init__(
        self, client_id: str = "trakt-client-id", client_secret: str = "trakt-secret-xyz"
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.pending = 1  # device/token answers 400 this many times before approving
        self.interval = 5  # seconds Trakt asks a device to wait between polls
        self.denied = False
        self.issued = 0
        self.valid_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.history: list[dict[str, Any]] = []
        self.ratings: list[dict[str, Any]] = []
        self.throttle: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, query

    def issue(self) -> dict[str, Any]:
        self.issued += 1
        access, refresh = f"access-{self.issued}-secret", f"refresh-{self.issued}-secret"
        self.valid_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": 7776000,
            "refresh_token": refresh,
            "scope": "public",
            "created_at": 1_700_000_000,
        }

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            trakt = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    trakt: TraktTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        t = self.trakt
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        t.requests.append(("POST", path, {}))
        if body.get("client_id") != t.client_id:
            self._json(401, {"error": "invalid_client"})
            return
        if path == "/oauth/device/code":
            self._json(
                200,
                {
                    "device_code": "device-code-secret",
                    "user_code": "5055CC52",
                    "verification_url": "https://trakt.tv/activate",
                    "expires_in": 600,
                    "interval": t.interval,
                },
            )
            return
        if body.get("client_secret") != t.client_secret:
            self._json(401, {"error": "invalid_client"})
            return
        if path == "/oauth/device/token":
            if t.denied:
                self._json(418, None)
            elif t.pending > 0:
                t.pending -= 1
                self._json(400, None)
            else:
                self._json(200, t.issue())
            return
        if path == "/oauth/token" and body.get("grant_type") == "refresh_token":
            if body.get("refresh_token") not in t.refresh_tokens:
                self._json(401, {"error": "invalid_grant"})
                return
            t.refresh_tokens.discard(body["refresh_token"])
            self._json(200, t.issue())
            return
        self._json(404, {"error": "not_found"})

    def do_GET(self) -> None:
        t = self.trakt
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        t.requests.append(("GET", parts.path, q))
        if (
            self.headers.get("trakt-api-key") != t.client_id
            or self.headers.get("trakt-api-version") != "2"
        ):
            self._json(403, {"error": "forbidden"})
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in t.valid_tokens:
            self._json(401, {"error": "invalid_token"})
            return
        if t.throttle:
            self._json(429, {"error": "rate limit"}, {"Retry-After": t.throttle.pop(0)})
            return
        if parts.path == "/users/settings":
            self._json(
                200, {"user": {"username": "sean", "private": False, "ids": {"slug": "sean"}}}
            )
            return
        rows = {"/sync/history/movies": t.history, "/sync/ratings/movies": t.ratings}.get(
            parts.path
        )
        if rows is None:
            self._json(404, {"error": "not_found"})
            return
        page, limit = int(q.get("page", "1")), int(q.get("limit", "10"))
        count = max(1, -(-len(rows) // limit))
        headers = {
            "X-Pagination-Page": str(page),
            "X-Pagination-Limit": str(limit),
            "X-Pagination-Page-Count": str(count),
            "X-Pagination-Item-Count": str(len(rows)),
        }
        self._json(200, rows[(page - 1) * limit : page * limit], headers)
