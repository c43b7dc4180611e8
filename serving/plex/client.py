"""Connecting to a Plex Media Server through plexapi, with errors a person can act on.

Every plexapi call the Plex adapters make goes through ``plex_errors`` so that a refused token,
a server that does not answer in time or an unreachable address each raise one clear error.
Messages name the server's address (without query string) and never the token.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import requests
from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0


class PlexError(RuntimeError):
    """Plex could not do what was asked. The message never contains the token."""


class PlexAuthError(PlexError):
    """The server refused the token (HTTP 401)."""


class PlexTimeoutError(PlexError):
    """The server did not answer within the timeout."""


class PlexConnectionError(PlexError):
    """The server could not be reached at all."""


def safe_url(url: str) -> str:
    """The URL without query string, fragment or user info: safe to put in logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class PlexSettings:
    """Where the server is and how to sign in. ``token`` is excluded from repr."""

    url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    plextv_url: str | None = None  # PLEX_TV_URL: a stand-in for https://plex.tv (tests)

    @classmethod
    def from_env(cls, timeout: float = DEFAULT_TIMEOUT) -> PlexSettings:
        """Read PLEX_URL and PLEX_TOKEN; a clear error names whichever is missing."""
        url = os.environ.get("PLEX_URL", "").strip()
        token = os.environ.get("PLEX_TOKEN", "").strip()
        missing = [name for name, value in (("PLEX_URL", url), ("PLEX_TOKEN", token)) if not value]
        if missing:
            raise PlexError(
                f"set {' and '.join(missing)} (the Plex server's address, e.g. "
                "http://127.0.0.1:32400, and an X-Plex-Token)"
            )
        plextv = os.environ.get("PLEX_TV_URL", "").strip() or None
        return cls(url=url, token=token, timeout=timeout, plextv_url=plextv)


@contextmanager
def plex_errors(url: str, what: str, timeout: float | None = None) -> Iterator[None]:
    """Translate plexapi/requests failures while doing ``what`` into PlexError subclasses."""
    where = safe_url(url)
    try:
        yield
    except Unauthorized:
        raise PlexAuthError(
            f"Plex at {where} refused the token while {what} (HTTP 401): check PLEX_TOKEN"
        ) from None
    except requests.Timeout:
        raise PlexTimeoutError(
            f"Plex at {where} did not answer within {timeout or DEFAULT_TIMEOUT:g} s while {what}"
        ) from None
    except requests.ConnectionError:
        raise PlexConnectionError(
            f"cannot reach Plex at {where} while {what}: "
            "is the server running and is PLEX_URL right?"
        ) from None
    except NotFound as exc:
        raise PlexError(f"Plex at {where}: not found while {what}: {_status(exc)}") from None
    except BadRequest as exc:
        raise PlexError(
            f"Plex at {where} rejected a request while {what}: {_status(exc)}"
        ) from None
    except ElementTree.ParseError:
        raise PlexError(
            f"Plex at {where} answered with something that is not XML while {what}"
        ) from None
    except (IndexError, TypeError):  # plexapi reading an empty answer or one without items
        raise PlexError(f"Plex at {where} gave an empty answer while {what}") from None


def _status(exc: Exception) -> str:
    """The status part of a plexapi HTTP error ('(404) not_found'), without its URL; plexapi's
    own messages (no URL) are kept."""
    text = str(exc)
    return text.split(";", 1)[0] if text.startswith("(") else text[:300]


def connect(settings: PlexSettings) -> PlexServer:
    """A connected PlexServer; raises PlexAuthError, PlexTimeoutError or PlexConnectionError."""
    from serving.plex.plextv import PlexTvSession

    session = PlexTvSession(settings.plextv_url)
    with plex_errors(settings.url, "connecting", settings.timeout):
        server = PlexServer(settings.url, settings.token, session=session, timeout=settings.timeout)
    log.info("connected to Plex %r at %s", server.friendlyName, safe_url(settings.url))
    return server
