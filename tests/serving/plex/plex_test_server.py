"""A small Plex Media Server stand-in for tests: stdlib HTTP on 127.0.0.1, Plex-shaped XML.

It answers the endpoints plexapi calls for what Marquee does (server root, libraries, paged
listings with Plex's filters, metadata, history, accounts, collections, playlists, library
creation, scans, directory browsing), checks X-Plex-Token (401 otherwise), honours the paging
headers (X-Plex-Container-Start/Size -> X-Plex-Container-Total-Size), and can hang to test
timeouts. The real plexapi client is run against it.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.stub_server import StubHTTPServer

MACHINE_ID = "marquee-test-machine"


@dataclass
class FakeMovie:
    rating_key: int
    title: str
    year: int
    section: int = 1
    guids: list[str] = field(default_factory=list)  # "imdb://tt..", "tmdb://.."
    guid: str = ""  # "plex://movie/..."
    genres: list[str] = field(default_factory=list)
    directors: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    studio: str = ""
    summary: str = ""
    tagline: str = ""
    updated_at: int = 1_600_000_000
    added_at: int = 1_600_000_000
    user_rating: float | None = None
    last_rated_at: int | None = None
    view_count: int = 0
    last_viewed_at: int | None = None
    duration: int = 6_000_000
    file: str = ""  # the media file (placeholders found by a scan)
    labels: list[str] = field(default_factory=list)


@dataclass
class FakeHistory:
    account_id: int
    rating_key: int
    viewed_at: int
    kind: str = "movie"


@dataclass
class FakeList:
    """A collection or playlist."""

    key: int
    title: str
    items: list[int]
    section: int = 0
    owner: int = 1  # the account a playlist belongs to
    labels: list[str] = field(default_factory=list)
    summary: str = ""
    sort: int = 0  # a collection's order: 0 release date, 1 alphabetical, 2 custom


class PlexTestServer(StubHTTPServer):
    """Start with ``with PlexTestServer() as plex:``; ``plex.url`` and ``plex.token``."""

    def __init__(self, token: str = "test-token-123") -> None:
        super().__init__()
        self.token = token
        self.friendly_name = "Test Plex"
        self.owner = "alice"
        self.sections: dict[int, dict[str, str]] = {
            1: {"title": "Movies", "type": "movie", "location": "/media/movies"},
            2: {"title": "TV Shows", "type": "show", "location": "/media/tv"},
        }
        self.accounts: dict[int, str] = {0: "", 1: "alice", 2: "bob"}
        self.user_tokens: dict[str, int] = {}  # other people's server tokens -> account id
        self.movie_filters: dict[int, str] = {}  # account id -> plex.tv filterMovies
        self.movies: dict[int, FakeMovie] = {}
        self.history: list[FakeHistory] = []
        self.collections: dict[int, FakeList] = {}
        self.playlists: dict[int, FakeList] = {}
        self.refreshed: list[int] = []
        self.edits: list[tuple[int, dict[str, str]]] = []  # movie metadata edits, in order
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.hang = False
        self.fail_path: str | None = None  # answer 500 for request paths starting with this
        # Creating a collection or playlist with this title gets this (status, body) instead.
        self.write_answers: dict[str, tuple[int, bytes]] = {}
        self._next_key = 10_000
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            plex = server

        return Handler

    def new_key(self) -> int:
        with self._lock:
            self._next_key += 1
            return self._next_key

    def scan(self, section: int) -> None:
        """As Plex's video files scanner: one movie per "<Title> (<Year>)" folder holding a video
        under the section's folder (any depth); movies whose file went away are dropped."""
        root = self.sections[section]["location"]
        found: dict[str, tuple[str, int]] = {}
        for dirpath, _dirs, files in os.walk(root):
            if ".marquee-cache" in dirpath:
                continue
            for name in files:
                match = re.fullmatch(r"(.+) \((\d{4})\)(?: \{[^}]*\})?\.mp4", name)
                if match:
                    found[os.path.join(dirpath, name)] = (match[1], int(match[2]))
        held = {m.file: k for k, m in self.movies.items() if m.section == section}
        for path, key in held.items():
            if path not in found:
                del self.movies[key]
        for path, (title, year) in found.items():
            if path not in held:
                key = self.new_key()
                self.movies[key] = FakeMovie(key, title, year, section=section, file=path)

    def paths(self, method: str = "GET") -> list[str]:
        return [p for m, p, _ in self.requests if m == method]

    # -- XML ------------------------------------------------------------------------------------

    def movie_xml(self, m: FakeMovie, *, full: bool, guids: bool) -> ET.Element:
        attrs: dict[str, Any] = {
            "ratingKey": m.rating_key,
            "key": f"/library/metadata/{m.rating_key}",
            "guid": m.guid,
            "type": "movie",
            "title": m.title,
            "year": m.year,
            "studio": m.studio,
            "summary": m.summary,
            "tagline": m.tagline,
            "thumb": f"/library/metadata/{m.rating_key}/thumb/{m.updated_at}",
            "duration": m.duration,
            "addedAt": m.added_at,
            "updatedAt": m.updated_at,
            "librarySectionID": m.section,
            "librarySectionTitle": self.sections[m.section]["title"],
        }
        if m.view_count:
            attrs["viewCount"] = m.view_count
        if m.last_viewed_at:
            attrs["lastViewedAt"] = m.last_viewed_at
        if m.user_rating is not None:
            attrs["userRating"] = m.user_rating
        if m.last_rated_at:
            attrs["lastRatedAt"] = m.last_rated_at
        el = ET.Element("Video", {k: str(v) for k, v in attrs.items() if v not in ("", None)})
        media = ET.SubElement(el, "Media", {"id": str(m.rating_key), "duration": str(m.duration)})
        if m.file:
            ET.SubElement(media, "Part", {"id": str(m.rating_key), "file": m.file})
        for tag, values in (
            ("Genre", m.genres),
            ("Country", m.countries),
            ("Director", m.directors),
            ("Writer", m.writers if full else m.writers[:1]),
            ("Role", m.roles if full else m.roles[:3]),  # listings carry only the top-billed
        ):
            for i, v in enumerate(values):
                ET.SubElement(el, tag, {"id": str(100 + i), "tag": v, "filter": f"x={i}"})
        for label in m.labels:
            ET.SubElement(el, "Label", {"tag": label})
        if full or guids:
            for g in m.guids:
                ET.SubElement(el, "Guid", {"id": g})
        return el

    def list_xml(self, item: FakeList, playlist: bool) -> ET.Element:
        if playlist:
            return ET.Element(
                "Playlist",
                {
                    "ratingKey": str(item.key),
                    "key": f"/playlists/{item.key}/items",
                    "type": "playlist",
                    "playlistType": "video",
                    "title": item.title,
                    "leafCount": str(len(item.items)),
                    "smart": "0",
                    "summary": item.summary,
                },
            )
        el = ET.Element(
            "Directory",
            {
                "ratingKey": str(item.key),
                "key": f"/library/collections/{item.key}/children",
                "type": "collection",
                "subtype": "movie",
                "title": item.title,
                "librarySectionID": str(item.section),
                "childCount": str(len(item.items)),
                "smart": "0",
                "summary": item.summary,
                "collectionSort": str(item.sort),
            },
        )
        for label in item.labels:
            ET.SubElement(el, "Label", {"tag": label})
        return el

    def visible(self, account: int, item: FakeList | FakeMovie) -> bool:
        """Whether the sharing filter of ``account`` lets it see this collection (Plex applies
        'label!=' and 'label=' restrictions to collections as to movies)."""
        if account == 1:
            return True
        labels = {x.lower() for x in item.labels}
        for part in self.movie_filters.get(account, "").split("|"):
            key, _, values = part.partition("=")
            wanted = {v.lower() for v in unquote(values).split(",") if v}
            if key == "label!" and labels & wanted:
                return False
            if key == "label" and wanted and not labels & wanted:
                return False
        return True

    def ordered(self, item: FakeList) -> list[int]:
        """A collection's items in its sort order (playlists: always as stored)."""
        if item.sort == 2 or item.section == 0:
            return list(item.items)
        movies = [self.movies[k] for k in item.items if k in self.movies]
        if item.sort == 1:
            return [m.rating_key for m in sorted(movies, key=lambda m: m.title)]
        return [m.rating_key for m in sorted(movies, key=lambda m: (m.year, m.title))]


def _b64(path: str) -> str:
    return base64.b64encode(path.encode("utf-8")).decode("utf-8")


def _passes(value: float | None, op: str, wanted: float) -> bool:
    if op == ">>":
        return value is not None and value > wanted
    if op == ">":  # "field>=value" in a URL: greater or equal
        return value is not None and value >= wanted
    raise AssertionError(op)


class _Handler(BaseHTTPRequestHandler):
    plex: PlexTestServer
    protocol_version = "HTTP/1.1"
    account = 0  # who is asking: 1 the owner, else the account of the token

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing -------------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _xml(self, root: ET.Element, headers: dict[str, str] | None = None) -> None:
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
        self._send(200, body, "text/xml;charset=utf-8", headers)

    def _container(self, children: list[ET.Element], **attrs: Any) -> None:
        """A MediaContainer, paged the way Plex pages (headers in, totalSize out)."""
        total = len(children)
        start = int(self.headers.get("X-Plex-Container-Start", "0"))
        size = int(self.headers.get("X-Plex-Container-Size", str(total or 1)))
        page = children[start : start + size]
        root = ET.Element(
            "MediaContainer",
            {
                "size": str(len(page)),
                "totalSize": str(total),
                "offset": str(start),
                **{k: str(v) for k, v in attrs.items()},
            },
        )
        root.extend(page)
        self._xml(
            root,
            {"X-Plex-Container-Start": str(start), "X-Plex-Container-Total-Size": str(total)},
        )

    def _dispatch(self, method: str) -> None:
        plex = self.plex
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length:
            self.rfile.read(length)
        plex.requests.append((method, path, query))
        token = self.headers.get("X-Plex-Token") or (query.get("X-Plex-Token") or [""])[0]
        self.account = 1 if token == plex.token else plex.user_tokens.get(token, 0)
        if not self.account:
            body = b"<html><head><title>Unauthorized</title></head><body>401</body></html>"
            self._send(401, body, "text/html")
            return
        if plex.hang:
            plex._release.wait(30)
            return
        if plex.fail_path is not None and path.startswith(plex.fail_path):
            self._send(500, b"<html>Internal error</html>", "text/html")
            return
        try:
            handled = self._route(method, path, query)
        except Exception as exc:  # a bug in the stand-in should show up clearly in the test
            self._send(500, f"test server error: {exc!r}".encode(), "text/plain")
            raise
        if not handled:
            self._send(404, b"<html>404 Not Found</html>", "text/html")

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict[str, list[str]]) -> bool:
        plex = self.plex
        one = {k: v[0] for k, v in q.items()}
        seg = [s for s in path.split("/") if s]
        if method == "GET" and path == "/":
            root = ET.Element(
                "MediaContainer",
                {
                    "friendlyName": plex.friendly_name,
                    "machineIdentifier": MACHINE_ID,
                    "myPlexUsername": plex.owner,
                    "version": "1.40.0.0",
                    "platform": "Linux",
                    "size": "0",
                },
            )
            self._xml(root)
            return True
        if method == "GET" and path == "/library":
            self._xml(ET.Element("MediaContainer", {"size": "0", "title1": "Plex Library"}))
            return True
        if seg[:2] == ["library", "sections"] and len(seg) == 2:
            if method == "POST":
                key = max(plex.sections) + 1
                plex.sections[key] = {
                    "title": one["name"],
                    "type": one["type"],
                    "location": one["location"],
                }
                self._xml(ET.Element("MediaContainer", {"size": "0"}))
                return True
            dirs = []
            for key, s in plex.sections.items():
                d = ET.Element(
                    "Directory",
                    {
                        "key": str(key),
                        "type": s["type"],
                        "title": s["title"],
                        "agent": "tv.plex.agents.movie",
                        "scanner": "Plex Movie",
                        "language": "en-US",
                        "uuid": f"uuid-{key}",
                    },
                )
                ET.SubElement(d, "Location", {"id": str(key), "path": s["location"]})
                dirs.append(d)
            self._xml(_root(dirs))
            return True
        if method == "PUT" and seg[:2] == ["library", "sections"] and seg[3:] == ["all"]:
            return self._edit(q)
        if seg[:2] == ["library", "sections"] and len(seg) == 4 and seg[3] == "all":
            return self._section_all(int(seg[2]), one)
        if seg[:2] == ["library", "sections"] and len(seg) == 4 and seg[3] == "refresh":
            plex.refreshed.append(int(seg[2]))
            plex.scan(int(seg[2]))
            self._xml(ET.Element("MediaContainer", {"size": "0"}))
            return True
        if method == "GET" and seg[:2] == ["library", "metadata"] and len(seg) == 3:
            keys = [int(k) for k in seg[2].split(",")]
            items = [
                plex.movie_xml(plex.movies[k], full=True, guids=True)
                for k in keys
                if k in plex.movies
            ]
            if not items:
                return False
            self._container(items)
            return True
        if method == "GET" and path == "/status/sessions/history/all":
            return self._history(one)
        if method == "GET" and path == "/accounts":
            accts = [
                ET.Element("Account", {"id": str(i), "key": f"/accounts/{i}", "name": n})
                for i, n in plex.accounts.items()
            ]
            self._container(accts)
            return True
        if seg[:2] == ["library", "collections"]:
            return self._lists(method, seg, one, plex.collections, playlist=False)
        if seg[:1] == ["playlists"]:
            return self._lists(method, seg, one, plex.playlists, playlist=True)
        if method == "GET" and seg[:2] == ["services", "browse"]:
            target = base64.b64decode(seg[2]).decode("utf-8") if len(seg) > 2 else "/"
            entries = []
            if os.path.isdir(target):
                for name in sorted(os.listdir(target)):
                    full = os.path.join(target, name)
                    if os.path.isdir(full):
                        entries.append(
                            ET.Element(
                                "Path",
                                {
                                    "key": f"/services/browse/{_b64(full)}",
                                    "path": full,
                                    "title": name,
                                },
                            )
                        )
            self._container(entries)
            return True
        return False

    def _section_all(self, section: int, one: dict[str, str]) -> bool:
        plex = self.plex
        if section not in plex.sections:
            return False
        kind = one.get("type", "1")
        if kind == "18":
            items = [
                plex.list_xml(c, playlist=False)
                for c in plex.collections.values()
                if c.section == section and plex.visible(self.account, c)
            ]
            self._container(items, librarySectionID=section)
            return True
        movies = [
            m
            for m in plex.movies.values()
            if m.section == section and plex.visible(self.account, m)
        ]
        for name, attr in (
            ("updatedAt", "updated_at"),
            ("lastRatedAt", "last_rated_at"),
            ("lastViewedAt", "last_viewed_at"),
            ("userRating", "user_rating"),
        ):
            for op in (">>", ">"):
                if f"{name}{op}" in one:
                    wanted = float(one[f"{name}{op}"])
                    movies = [m for m in movies if _passes(getattr(m, attr), op, wanted)]
        movies.sort(key=lambda m: m.title)
        guids = one.get("includeGuids") == "1"
        items = [plex.movie_xml(m, full=False, guids=guids) for m in movies]
        self._container(items, librarySectionID=section)
        return True

    def _history(self, one: dict[str, str]) -> bool:
        plex = self.plex
        entries = list(plex.history)
        if "viewedAt>" in one:
            entries = [h for h in entries if h.viewed_at >= int(one["viewedAt>"])]
        if "accountID" in one:
            entries = [h for h in entries if h.account_id == int(one["accountID"])]
        entries.sort(key=lambda h: -h.viewed_at)
        items = []
        for i, h in enumerate(entries):
            m = plex.movies.get(h.rating_key)
            attrs = {
                "historyKey": f"/status/sessions/history/{i + 1}",
                "key": f"/library/metadata/{h.rating_key}",
                "ratingKey": str(h.rating_key),
                "title": m.title if m else "Gone",
                "type": h.kind,
                "viewedAt": str(h.viewed_at),
                "accountID": str(h.account_id),
                "deviceID": "3",
            }
            if m is not None:
                attrs.update({"year": str(m.year), "librarySectionID": str(m.section)})
            items.append(ET.Element("Video", attrs))
        self._container(items)
        return True

    def _edit(self, q: dict[str, list[str]]) -> bool:
        """PUT /library/sections/<id>/all?type=..&id=..&summary.value=..&label[0].tag.tag=..:
        plexapi's field and tag edits of movies and collections."""
        plex = self.plex
        one = {k: v[0] for k, v in q.items()}
        if self.account != 1:
            self._send(403, b"<html>Forbidden</html>", "text/html")
            return True
        for key in (int(k) for k in one["id"].split(",")):
            target: Any = plex.collections.get(key) or plex.movies.get(key)
            if target is None:
                return False
            for name in ("summary", "tagline", "title"):
                if f"{name}.value" in one and hasattr(target, name):
                    setattr(target, name, one[f"{name}.value"])
            labels = [v for k, v in sorted(one.items()) if k.startswith("label[") and
                      k.endswith("].tag.tag")]  # fmt: skip
            if labels or "label[].tag.tag-" in one:
                target.labels = labels
            if isinstance(target, FakeMovie):
                plex.edits.append((key, dict(one)))
        self._xml(ET.Element("MediaContainer", {"size": "0"}))
        return True

    def _lists(
        self,
        method: str,
        seg: list[str],
        one: dict[str, str],
        store: dict[int, FakeList],
        playlist: bool,
    ) -> bool:
        plex = self.plex
        if method == "POST" and len(seg) == (1 if playlist else 2):
            if one.get("title") in plex.write_answers:
                status, body = plex.write_answers[one["title"]]
                self._send(status, body, "text/xml" if status == 200 else "text/html")
                return True
            uri = unquote(one["uri"])
            keys = [int(k) for k in uri.rsplit("/library/metadata/", 1)[1].split(",")]
            missing = [k for k in keys if k not in plex.movies]
            if missing or not uri.startswith(f"server://{MACHINE_ID}/"):
                self._send(400, b"<html>Bad Request</html>", "text/html")
                return True
            if not playlist and self.account != 1:
                self._send(403, b"<html>Forbidden</html>", "text/html")
                return True
            made = FakeList(plex.new_key(), one["title"], keys, int(one.get("sectionId", 0) or 0))
            made.owner = self.account
            store[made.key] = made
            self._xml(_root([plex.list_xml(made, playlist)]))
            return True
        if method == "GET" and playlist and len(seg) == 1:
            items = [
                plex.list_xml(p, True)
                for p in store.values()
                if p.owner == self.account
                and ("title" not in one or one["title"].lower() in p.title.lower())
            ]
            self._container(items)
            return True
        base = 1 if playlist else 2  # index of the list's key in the path
        if len(seg) <= base or not seg[base].isdigit():
            return False
        item = store.get(int(seg[base]))
        if item is None:
            return False
        mine = item.owner == self.account if playlist else plex.visible(self.account, item)
        if not mine:
            return False  # as Plex: another person's list does not exist for you
        rest = seg[base + 1 :]
        if not rest and method == "GET":
            el = plex.list_xml(item, playlist)
            if one.get("includePreferences") == "1" and not playlist:
                prefs = ET.SubElement(el, "Preferences")
                ET.SubElement(prefs, "Setting", {
                    "id": "collectionSort", "label": "Collection sort", "type": "int",
                    "default": "0", "value": str(item.sort),
                    "enumValues": "0:Release date|1:Alphabetical|2:Custom",
                })  # fmt: skip
            self._container([el])
            return True
        if not playlist and rest == ["prefs"] and method == "PUT":
            if self.account != 1:
                return False
            item.sort = int(one.get("collectionSort", item.sort))
            self._xml(ET.Element("MediaContainer", {"size": "0"}))
            return True
        if method == "DELETE" and not rest:
            if playlist or self.account == 1:
                store.pop(item.key)
                self._send(200, b"", "text/xml")
                return True
            return False
        if method == "PUT" and playlist and not rest:  # playlist edits: ?summary.value=...
            if "summary.value" in one:
                item.summary = one["summary.value"]
            if "title.value" in one:
                item.title = one["title.value"]
            self._xml(ET.Element("MediaContainer", {"size": "0"}))
            return True
        if method == "GET" and rest in (["children"], ["items"]):
            keys = plex.ordered(item)
            children = []
            for k in keys:
                el = plex.movie_xml(plex.movies[k], full=False, guids=False)
                if playlist:
                    el.set("playlistItemID", str(_item_id(k)))
                children.append(el)
            self._container(children, ratingKey=item.key, title=item.title)
            return True
        if method == "PUT" and rest == ["items"]:
            uri = unquote(one["uri"])
            keys = [int(k) for k in uri.rsplit("/library/metadata/", 1)[1].split(",")]
            if any(k not in plex.movies for k in keys):
                self._send(400, b"<html>Bad Request</html>", "text/html")
                return True
            item.items.extend(k for k in keys if k not in item.items)
            self._xml(_root([plex.list_xml(item, playlist)]))
            return True
        if method == "DELETE" and len(rest) == 2 and rest[0] == "items":
            key = int(rest[1]) - (_item_id(0) if playlist else 0)
            if key not in item.items:
                return False
            item.items.remove(key)
            self._xml(_root([plex.list_xml(item, playlist)]))
            return True
        if method == "PUT" and len(rest) == 3 and rest[0] == "items" and rest[2] == "move":
            offset = _item_id(0) if playlist else 0
            key = int(rest[1]) - offset
            if key not in item.items:
                return False
            item.items.remove(key)
            after = int(one["after"]) - offset if "after" in one else None
            at = 0 if after is None else item.items.index(after) + 1
            item.items.insert(at, key)
            self._xml(_root([plex.list_xml(item, playlist)]))
            return True
        return False


def _item_id(rating_key: int) -> int:
    """A playlist item's id (Plex numbers them apart from the movies' ratingKeys)."""
    return 900_000 + rating_key


def _root(children: list[ET.Element]) -> ET.Element:
    root = ET.Element("MediaContainer", {"size": str(len(children))})
    root.extend(children)
    return root


def sample_server(token: str = "test-token-123") -> PlexTestServer:
    """A server holding three movies, two accounts' history and one rating."""
    plex = PlexTestServer(token)
    plex.movies = {
        101: FakeMovie(
            101,
            "Toy Story",
            1995,
            guids=["imdb://tt0114709", "tmdb://862"],
            guid="plex://movie/5d7768",
            genres=["Animation", "Comedy"],
            directors=["John Lasseter"],
            writers=["Joss Whedon", "Andrew Stanton"],
            roles=["Tom Hanks", "Tim Allen", "Don Rickles", "Jim Varney"],
            countries=["USA"],
            studio="Pixar",
            summary="Toys come alive.",
            user_rating=9.0,
            last_rated_at=1_600_000_500,
            view_count=2,
            last_viewed_at=1_600_000_400,
        ),
        102: FakeMovie(
            102,
            "Heat",
            1995,
            guids=["imdb://tt0113277", "tmdb://949"],
            genres=["Crime"],
            directors=["Michael Mann"],
            writers=["Michael Mann"],
            roles=["Al Pacino", "Robert De Niro"],
            studio="Warner Bros.",
        ),
        103: FakeMovie(
            103,
            "Home Movie",
            2020,
            guids=[],
            guid="local://103",
            genres=["Documentary"],
            roles=["Tom Hanks"],
        ),
    }
    plex.history = [
        FakeHistory(1, 101, 1_600_000_300),
        FakeHistory(2, 101, 1_600_000_350),
        FakeHistory(2, 102, 1_600_000_360),
        FakeHistory(1, 999, 1_600_000_370, kind="episode"),
    ]
    return plex
