"""A small plex.tv stand-in for tests: the owner's account, home users and shared friends, the
sharing filters, each person's server token (shared servers and the resources API), home-user
switching, the watchlist and Discover's movie search (discover.provider.plex.tv), in the XML
and JSON shapes plexapi's MyPlexAccount reads. Point plexapi at it with
serving.plex.plextv.PlexTvSession(url).

Tokens: each person has a plex.tv token; the owner's is the PMS owner token (as on a real
server). Linked to a PlexTestServer, it registers each person's server token there and tells it
each person's movie filter, so the PMS stand-in can show each person only what Plex would.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.serving.plex.plex_test_server import MACHINE_ID, PlexTestServer
from tests.stub_server import StubHTTPServer


@dataclass
class WatchlistItem:
    """A movie on someone's plex.tv watchlist (Plex's online metadata)."""

    rating_key: str  # plex.tv's id, e.g. "5d776825880197001ec967c6"
    title: str
    year: int
    guids: list[str] = field(default_factory=list)  # "imdb://tt..", "tmdb://.."
    watchlisted_at: int = 1_700_000_000


@dataclass
class PlexTvUser:
    """A person on plex.tv: the owner, a home user, or a friend the server is shared with."""

    id: int
    username: str
    token: str  # their plex.tv token
    server_token: str  # their token on the linked server
    home: bool = False
    shared: bool = True  # has the server shared with them (friends and home users)
    email: str = ""
    filter_movies: str = ""
    watchlist: list[WatchlistItem] = field(default_factory=list)


class PlexTvTestServer(StubHTTPServer):
    """Start with ``with PlexTvTestServer(pms) as tv:``; ``tv.url``; people in ``tv.users``."""

    def __init__(self, pms: PlexTestServer | None = None, owner: str = "alice") -> None:
        super().__init__()
        self.pms = pms
        owner_token = pms.token if pms is not None else "owner-token"
        self.owner = PlexTvUser(1, owner, owner_token, owner_token, home=True, shared=False)
        self.users: dict[int, PlexTvUser] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.forbid_filters = False  # answer 403 to sharing-filter updates (e.g. no Plex Pass)
        self.catalogue: list[WatchlistItem] = []  # what Discover's search finds (plex.tv's movies)
        self.fail_watchlist = False  # answer 500 to watchlist changes (plex.tv having a bad day)
        self._lock = threading.Lock()

    def add_user(
        self, id: int, username: str, *, home: bool = False, filter_movies: str = ""
    ) -> PlexTvUser:
        user = PlexTvUser(
            id,
            username,
            token=f"tv-token-{username}",
            server_token=f"server-token-{username}",
            home=home,
            email=f"{username}@example.com",
            filter_movies=filter_movies,
        )
        self.users[id] = user
        self._publish(user)
        return user

    def _publish(self, user: PlexTvUser) -> None:
        if self.pms is not None:
            self.pms.user_tokens[user.server_token] = user.id
            self.pms.movie_filters[user.id] = user.filter_movies

    def everyone(self) -> list[PlexTvUser]:
        return [self.owner, *self.users.values()]

    def by_token(self, token: str) -> PlexTvUser | None:
        return next((u for u in self.everyone() if u.token == token), None)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            tv = server

        return Handler


def _el(tag: str, **attrs: Any) -> ET.Element:
    return ET.Element(tag, {k: str(v) for k, v in attrs.items() if v is not None})


def _container(children: list[ET.Element], **attrs: Any) -> ET.Element:
    root = _el("MediaContainer", size=len(children), **attrs)
    root.extend(children)
    return root


class _Handler(BaseHTTPRequestHandler):
    tv: PlexTvTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _xml(self, root: ET.Element) -> None:
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
        self._send(200, body, "application/xml")

    def _dispatch(self, method: str) -> None:
        tv = self.tv
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length:
            self.rfile.read(length)
        tv.requests.append((method, parts.path, query))
        token = self.headers.get("X-Plex-Token") or (query.get("X-Plex-Token") or [""])[0]
        me = tv.by_token(token)
        if me is None:
            body = b'{"errors":[{"code":1001,"message":"User could not be authenticated"}]}'
            self._send(401, body, "application/json")
            return
        try:
            with tv._lock:
                handled = self._route(method, parts.path, query, me)
        except Exception as exc:
            self._send(500, f"test server error: {exc!r}".encode(), "text/plain")
            raise
        if not handled:
            self._send(404, b'{"errors":[{"code":1002,"message":"Not found"}]}', "application/json")

    def _route(self, method: str, path: str, q: dict[str, list[str]], me: PlexTvUser) -> bool:
        tv = self.tv
        seg = [s for s in path.split("/") if s]
        owner = me is tv.owner
        if method == "GET" and path == "/api/v2/user":
            self._xml(self._account(me))
            return True
        if method == "GET" and path in ("/api/users", "/api/users/") and owner:
            self._xml(_container([self._user(u) for u in tv.users.values()]))
            return True
        if method == "GET" and path == "/api/home/users" and owner:
            home = [tv.owner] + [u for u in tv.users.values() if u.home]
            users = [
                _el("User", id=u.id, title=u.username, username=u.username,
                    admin=int(u is tv.owner), restricted=0, protected=0, home=1)
                for u in home
            ]  # fmt: skip
            self._xml(_container(users, friendlyName="Home"))
            return True
        if method == "POST" and seg[:3] == ["api", "home", "users"] and seg[-1:] == ["switch"]:
            user = tv.users.get(int(seg[3]))
            if user is None or not user.home or not owner:
                return False
            self._xml(_el("user", id=user.id, uuid=f"uuid-{user.id}", title=user.username,
                          username=user.username, authenticationToken=user.token))  # fmt: skip
            return True
        if method == "GET" and seg[:2] == ["api", "servers"] and len(seg) == 3 and owner:
            if seg[2] != MACHINE_ID:
                return False
            server = _el("Server", name="Test Plex", machineIdentifier=MACHINE_ID)
            for key, s in self._sections():
                server.append(
                    _el("Section", id=1000 + key, key=key, type=s["type"], title=s["title"])
                )
            self._xml(_container([server]))
            return True
        if method == "GET" and seg[:2] == ["api", "servers"] and seg[3:] == ["shared_servers"]:
            if seg[2] != MACHINE_ID or not owner:
                return False
            shared = [
                _el("SharedServer", id=500 + u.id, username=u.username, email=u.email,
                    userID=u.id, accessToken=u.server_token, name="Test Plex",
                    acceptedAt=1_600_000_000, invitedAt=1_600_000_000, owned=0)
                for u in tv.users.values() if u.shared and not u.home  # home users: via Home
            ]  # fmt: skip
            self._xml(_container(shared, identifier="com.plexapp.plugins.myplex"))
            return True
        if method == "PUT" and seg[:3] == ["api", "v2", "sharings"] and owner:
            user = tv.users.get(int(seg[3]))
            if user is None:
                return False
            if tv.forbid_filters:
                self._send(403, b'{"errors":[{"code":1029,"message":"Forbidden"}]}',
                           "application/json")  # fmt: skip
                return True
            if "filterMovies" in q:
                user.filter_movies = q["filterMovies"][0]
                tv._publish(user)
            self._send(200, b"{}", "application/json")
            return True
        if method == "GET" and path == "/api/v2/resources":
            self._xml(self._resources(me))
            return True
        if method == "GET" and seg[:3] == ["library", "sections", "watchlist"]:
            items = [
                _el("Video", ratingKey=w.rating_key, key=f"/library/metadata/{w.rating_key}",
                    guid=f"plex://movie/{w.rating_key}", type="movie", title=w.title, year=w.year,
                    watchlistedAt=w.watchlisted_at)
                for w in me.watchlist
            ]  # fmt: skip
            for el, w in zip(items, me.watchlist, strict=True):
                for g in w.guids:
                    el.append(_el("Guid", id=g))
            self._xml(_container(items, librarySectionTitle="Watchlist"))
            return True
        if method == "GET" and seg[:2] == ["library", "metadata"] and seg[3:] == ["userState"]:
            on = next((w for w in me.watchlist if w.rating_key == seg[2]), None)
            state = _el("UserState", ratingKey=seg[2], type="movie", viewCount=0,
                        watchlistedAt=on.watchlisted_at if on else None)  # fmt: skip
            self._xml(_container([state]))
            return True
        if method == "GET" and path == "/library/search":  # Discover search (JSON only)
            self._search(q)
            return True
        if method == "PUT" and seg[:1] == ["actions"]:
            if tv.fail_watchlist:
                self._send(500, b'{"errors":[{"code":2000,"message":"Internal error"}]}',
                           "application/json")  # fmt: skip
                return True
            wanted = (q.get("ratingKey") or [""])[0]
            if seg[1:] == ["removeFromWatchlist"]:
                me.watchlist = [w for w in me.watchlist if w.rating_key != wanted]
            elif seg[1:] == ["addToWatchlist"]:
                known = next((c for c in tv.catalogue if c.rating_key == wanted), None)
                if all(w.rating_key != wanted for w in me.watchlist):
                    me.watchlist.append(known or WatchlistItem(wanted, wanted, 0))
            else:
                return False
            self._send(200, b"{}", "application/json")
            return True
        if method == "GET" and path == "/":  # the metadata provider's root
            self._xml(_el("MediaContainer", friendlyName="Plex Metadata", machineIdentifier="md",
                          size=0))  # fmt: skip
            return True
        return False

    def _search(self, q: dict[str, list[str]]) -> None:
        """Discover's search: catalogue movies whose title contains the query, in plex.tv's
        JSON (SearchResults, the "external" provider's SearchResult list of Metadata)."""
        text = (q.get("query") or [""])[0].casefold()
        limit = int((q.get("limit") or ["30"])[0])
        found = [c for c in self.tv.catalogue if text and text in c.title.casefold()][:limit]
        results = [
            {"score": 0.9, "Metadata": {
                "type": "movie", "ratingKey": c.rating_key, "guid": f"plex://movie/{c.rating_key}",
                "key": f"/library/metadata/{c.rating_key}", "title": c.title, "year": c.year}}
            for c in found
        ]  # fmt: skip
        body = {"MediaContainer": {"size": 1, "SearchResults": [
            {"id": "external", "title": "More Ways To Watch", "size": len(results),
             "SearchResult": results}]}}  # fmt: skip
        self._send(200, json.dumps(body).encode(), "application/json")

    def _sections(self) -> list[tuple[int, dict[str, str]]]:
        pms = self.tv.pms
        return sorted(pms.sections.items()) if pms is not None else []

    def _account(self, me: PlexTvUser) -> ET.Element:
        root = _el(
            "user", id=me.id, uuid=f"uuid-{me.id}", username=me.username, title=me.username,
            email=me.email or f"{me.username}@example.com", friendlyName=me.username,
            locale="", confirmed=1, joinedAt=1_500_000_000, emailOnlyAuth=0, hasPassword=1,
            protected=0, thumb="", authToken=me.token, mailingListStatus="unsubscribed",
            mailingListActive=0, scrobbleTypes="", country="US", pin="", restricted=0,
            anonymous="", home=1, guest=0, homeSize=1 + len(self.tv.users), homeAdmin=int(
                me is self.tv.owner), maxHomeSize=15, rememberExpiresAt=1_900_000_000,
            adsConsent="", twoFactorEnabled=0, backupCodesCreated=0,
        )  # fmt: skip
        sub = _el("subscription", active=1, subscribedAt="2020-01-01 00:00:00 UTC",
                  status="Active", paymentService="", plan="lifetime")  # fmt: skip
        sub.append(_el("features"))
        root.append(sub)
        root.append(_el("profile", autoSelectAudio=1, defaultAudioLanguage="en",
                        defaultSubtitleLanguage="en", autoSelectSubtitle=0,
                        defaultSubtitleAccessibility=0, defaultSubtitleForces=0))  # fmt: skip
        root.append(_el("entitlements"))
        root.append(_el("roles"))
        root.append(_el("services"))
        return root

    def _user(self, u: PlexTvUser) -> ET.Element:
        el = _el(
            "User", id=u.id, title=u.username, username=u.username, email=u.email,
            recommendationsPlaylistId="", thumb="", protected=0, home=int(u.home),
            allowTuners=0, allowSync=0, allowCameraUpload=0, allowChannels=0,
            allowSubtitleAdmin=0, filterAll="", filterMovies=u.filter_movies, filterMusic="",
            filterPhotos="", filterTelevision="", restricted=0,
        )  # fmt: skip
        if u.shared:
            el.append(_el("Server", id=500 + u.id, serverId=42, machineIdentifier=MACHINE_ID,
                          name="Test Plex", lastSeenAt=1_600_000_000, numLibraries=1,
                          allLibraries=1, owned=0, pending=0))  # fmt: skip
        return el

    def _resources(self, me: PlexTvUser) -> ET.Element:
        tv = self.tv
        if tv.pms is None or not (me is tv.owner or me.shared):
            return _el("resources", size=0)
        res = _el(
            "resource", name="Test Plex", product="Plex Media Server", productVersion="1.40.0",
            platform="Linux", platformVersion="6", device="PC", clientIdentifier=MACHINE_ID,
            createdAt="2020-01-01T00:00:00Z", lastSeenAt="2026-01-01T00:00:00Z",
            provides="server", ownerId="" if me is tv.owner else tv.owner.id,
            sourceTitle="" if me is tv.owner else tv.owner.username,
            publicAddress="127.0.0.1", accessToken=me.server_token, owned=int(me is tv.owner),
            home=int(me.home), synced=0, relay=0, presence=1, httpsRequired=0,
            publicAddressMatches=1, dnsRebindingProtection=0, natLoopbackSupported=1,
        )  # fmt: skip
        conns = _el("connections")
        parts = urlsplit(tv.pms.url)
        conns.append(_el("connection", protocol="http", address=parts.hostname, port=parts.port,
                         uri=tv.pms.url, local=1, relay=0, IPv6=0))  # fmt: skip
        res.append(conns)
        root = _el("resources", size=1)
        root.append(res)
        return root
