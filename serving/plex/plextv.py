"""The server's people, read through plex.tv: the owner, home users and shared friends, each
with their own token for this server, and the label filter that hides others' lists from them.

plexapi's MyPlexAccount talks to fixed https://plex.tv addresses; ``PlexTvSession`` sends them to
``PLEX_TV_URL`` instead when it is set (a test server speaking plex.tv's XML), and leaves them
alone otherwise. Tokens are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from plexapi.exceptions import NotFound
from plexapi.myplex import MyPlexAccount, MyPlexUser
from plexapi.server import PlexServer

from serving.plex.client import PlexError, plex_errors, safe_url

log = logging.getLogger(__name__)

PLEX_TV_HOSTS = frozenset(
    {"plex.tv", "discover.provider.plex.tv", "metadata.provider.plex.tv", "vod.provider.plex.tv"}
)
LABEL_PREFIX = "marquee-for-"


class PlexTvSession(requests.Session):
    """A requests session that sends plex.tv's hosts to ``base`` (None: the real plex.tv)."""

    def __init__(self, base: str | None = None) -> None:
        super().__init__()
        self.base = base.rstrip("/") if base else None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else url
        if self.base is not None:
            parts = urlsplit(text)
            if parts.hostname in PLEX_TV_HOSTS:
                base = urlsplit(self.base)
                text = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
        return super().request(method, text, *args, **kwargs)


def user_label(name: str) -> str:
    """The label that marks a collection as one person's (Plex labels are case-insensitive)."""
    return LABEL_PREFIX + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


@dataclass
class PlexPerson:
    """One person who uses the server: the owner, a home user or a friend it is shared with."""

    name: str
    account_id: int
    role: str  # "owner", "home" or "friend"
    server: PlexServer | None = field(default=None, repr=False)  # signed in as this person
    filter_movies: str = ""
    user: MyPlexUser | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return user_label(self.name)


def parse_filter(text: str) -> list[tuple[str, list[str]]]:
    """plex.tv's filter string ('label!=a%2Cb|contentRating=G') as (key, values) pairs."""
    out: list[tuple[str, list[str]]] = []
    for part in (text or "").split("|"):
        if "=" not in part:
            continue
        key, _, values = part.partition("=")
        out.append((key, [v for v in values.replace("%2C", ",").split(",") if v]))
    return out


def hiding_filter(current: str, hide: Sequence[str]) -> dict[str, list[str]]:
    """The person's movie filter with Marquee's 'label!=' entries replaced by ``hide``; their
    other restrictions (content ratings, their own labels) are kept."""
    out: dict[str, list[str]] = {}
    for key, values in parse_filter(current):
        if key == "label!":
            values = [v for v in values if not v.startswith(LABEL_PREFIX)]
        if values:
            out.setdefault(key, []).extend(values)
    if hide:
        out.setdefault("label!", []).extend(sorted(hide))
    return out


class PlexPeople:
    """Reads the people of one server through plex.tv and signs in as each of them."""

    def __init__(self, server: PlexServer) -> None:
        self.server = server
        self._url = safe_url(server._baseurl)

    def account(self) -> MyPlexAccount:
        with plex_errors("https://plex.tv", "reading the owner's plex.tv account"):
            return self.server.myPlexAccount()

    def people(self) -> list[PlexPerson]:
        """The owner first, then home users and friends who can use this server, by name."""
        account = self.account()
        owner = PlexPerson(
            name=account.username or account.title, account_id=account.id, role="owner"
        )
        owner.server = self.server
        machine = self.server.machineIdentifier
        others: list[PlexPerson] = []
        with plex_errors("https://plex.tv", "listing the server's users"):
            users = account.users()
            for user in users:
                if user.home:
                    role = "home"
                elif any(s.machineIdentifier == machine for s in user.servers):
                    role = "friend"
                else:
                    continue
                person = PlexPerson(
                    name=user.title or user.username,
                    account_id=user.id,
                    role=role,
                    filter_movies=user.filterMovies or "",
                    user=user,
                )
                person.server = self._sign_in(account, user)
                others.append(person)
        return [owner, *sorted(others, key=lambda p: p.name.lower())]

    def _sign_in(self, account: MyPlexAccount, user: MyPlexUser) -> PlexServer | None:
        """This server as ``user``: their token from the shared servers, else (a home user) from
        plex.tv's resources API after switching to them. None when neither gives one."""
        machine = self.server.machineIdentifier
        token = user.get_token(machine)
        if not token and user.home:
            try:
                switched = account.switchHomeUser(user)
                token = next(
                    (r.accessToken for r in switched.resources() if r.clientIdentifier == machine),
                    None,
                )
            except NotFound:
                token = None
        if not token:
            log.warning("plex.tv gave no token for %s on this server", user.title)
            return None
        with plex_errors(self._url, f"signing in as {user.title}"):
            return PlexServer(
                self.server._baseurl,
                token=token,
                session=self.server._session,
                timeout=self.server._timeout,
            )

    def hide_others(self, people: Sequence[PlexPerson], labels: Sequence[str]) -> list[str]:
        """Set each non-owner's label filter so that they see none of ``labels`` but their own.
        Returns the names whose filter could not be set (they fall back to playlists)."""
        account = self.account()
        failed: list[str] = []
        for person in people:
            if person.role == "owner" or person.user is None:
                continue
            hide = [lab for lab in labels if lab != person.label]
            wanted = hiding_filter(person.filter_movies, hide)
            try:
                with plex_errors("https://plex.tv", f"setting {person.name}'s sharing filter"):
                    account.updateFriend(person.user, self.server, filterMovies=wanted)
            except PlexError as exc:
                log.warning("cannot restrict %s's view: %s", person.name, exc)
                failed.append(person.name)
        return failed
