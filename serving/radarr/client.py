"""Radarr's v3 API: "download now" for a recommended movie.

Adding is a lookup by TMDB id followed by POST /api/v3/movie with a quality profile, a root
folder, ``monitored`` and ``addOptions.searchForMovie``. A movie Radarr already has is reported
as such, not as a failure. Errors name the server (without query string) and never the API key.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0


class RadarrError(RuntimeError):
    """Radarr could not do what was asked. The message never contains the API key."""


class RadarrAuthError(RadarrError):
    """Radarr refused the API key."""


@dataclass(frozen=True)
class RadarrSettings:
    url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, timeout: float = DEFAULT_TIMEOUT) -> RadarrSettings:
        url = os.environ.get("RADARR_URL", "").strip()
        key = os.environ.get("RADARR_API_KEY", "").strip()
        missing = [n for n, v in (("RADARR_URL", url), ("RADARR_API_KEY", key)) if not v]
        if missing:
            raise RadarrError(
                f"set {' and '.join(missing)} (Radarr's address, e.g. http://127.0.0.1:7878, "
                "and its API key from Settings > General)"
            )
        return cls(url=url.rstrip("/"), api_key=key, timeout=timeout)


@dataclass(frozen=True)
class AddResult:
    tmdb_id: int
    title: str
    radarr_id: int
    added: bool  # False when Radarr already had it
    searching: bool


class RadarrClient:
    """A small synchronous client for the parts of Radarr's v3 API that Marquee uses."""

    def __init__(
        self, settings: RadarrSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._where = httpx.URL(settings.url).copy_with(query=None, fragment=None, userinfo=b"")
        self._http = httpx.Client(
            base_url=settings.url,
            headers={"X-Api-Key": settings.api_key, "Accept": "application/json"},
            timeout=settings.timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RadarrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise RadarrError(
                f"Radarr at {self._where} did not answer within {self.settings.timeout:g} s "
                f"while {what}"
            ) from None
        except httpx.TransportError as exc:
            raise RadarrError(
                f"cannot reach Radarr at {self._where} while {what} ({type(exc).__name__}): "
                "is it running and is RADARR_URL right?"
            ) from None
        if resp.status_code == 401:
            raise RadarrAuthError(
                f"Radarr at {self._where} refused the API key while {what} (HTTP 401): "
                "check RADARR_API_KEY"
            )
        return resp

    def _json(self, method: str, path: str, what: str, **kw: Any) -> Any:
        resp = self._request(method, path, what, **kw)
        if resp.status_code >= 400:
            raise RadarrError(
                f"Radarr at {self._where} answered {resp.status_code} while {what}: "
                f"{_messages(resp)}"
            )
        try:
            return resp.json()
        except ValueError:
            raise RadarrError(f"Radarr at {self._where} sent no JSON while {what}") from None

    def lookup(self, tmdb_id: int) -> dict[str, Any]:
        data = self._json(
            "GET",
            "/api/v3/movie/lookup/tmdb",
            f"looking up TMDB id {tmdb_id}",
            params={"tmdbId": tmdb_id},
        )
        if not isinstance(data, dict) or not data.get("title"):
            raise RadarrError(f"Radarr found no movie with TMDB id {tmdb_id}")
        return data

    def existing(self, tmdb_id: int) -> dict[str, Any] | None:
        data = self._json("GET", "/api/v3/movie", "listing movies", params={"tmdbId": tmdb_id})
        movies = [m for m in data if isinstance(m, dict) and m.get("tmdbId") == tmdb_id]
        return movies[0] if movies else None

    def quality_profile_id(self, wanted: int | str | None) -> int:
        profiles = self._json("GET", "/api/v3/qualityprofile", "listing quality profiles")
        if not profiles:
            raise RadarrError("Radarr has no quality profiles")
        if wanted is None:
            return int(profiles[0]["id"])
        for p in profiles:
            if (
                str(p.get("id")) == str(wanted)
                or str(p.get("name", "")).lower() == str(wanted).lower()
            ):
                return int(p["id"])
        names = ", ".join(f"{p.get('id')}:{p.get('name')}" for p in profiles)
        raise RadarrError(f"no Radarr quality profile {wanted!r}; there are: {names}")

    def root_folder(self, wanted: str | None) -> str:
        folders = self._json("GET", "/api/v3/rootfolder", "listing root folders")
        paths = [str(f["path"]) for f in folders if f.get("path")]
        if not paths:
            raise RadarrError(
                "Radarr has no root folder; add one under Settings > Media Management"
            )
        if wanted is None:
            return paths[0]
        if wanted.rstrip("/") in {p.rstrip("/") for p in paths}:
            return wanted
        raise RadarrError(f"{wanted!r} is not a Radarr root folder; there are: {', '.join(paths)}")

    def add(
        self,
        tmdb_id: int,
        *,
        quality_profile: int | str | None = None,
        root_folder: str | None = None,
        monitored: bool = True,
        search: bool = True,
    ) -> AddResult:
        """Add a movie by TMDB id and (by default) start searching for it."""
        if tmdb_id <= 0:
            raise RadarrError(f"TMDB id must be a positive integer, got {tmdb_id}")
        have = self.existing(tmdb_id)
        if have is not None:
            log.info("Radarr already has %r (TMDB %d)", have.get("title"), tmdb_id)
            return AddResult(
                tmdb_id, str(have.get("title", "")), int(have.get("id", 0)), False, False
            )
        movie = self.lookup(tmdb_id)
        body = {
            **movie,
            "tmdbId": tmdb_id,
            "title": movie["title"],
            "qualityProfileId": self.quality_profile_id(quality_profile),
            "rootFolderPath": self.root_folder(root_folder),
            "monitored": monitored,
            "minimumAvailability": movie.get("minimumAvailability") or "released",
            "addOptions": {"searchForMovie": search},
        }
        resp = self._request("POST", "/api/v3/movie", f"adding TMDB id {tmdb_id}", json=body)
        if resp.status_code == 400 and "MovieExistsValidator" in resp.text:
            return AddResult(tmdb_id, str(movie["title"]), 0, False, False)
        if resp.status_code >= 400:
            raise RadarrError(
                f"Radarr at {self._where} answered {resp.status_code} while adding TMDB id "
                f"{tmdb_id}: {_messages(resp)}"
            )
        created = resp.json()
        log.info("added %r (TMDB %d) to Radarr", created.get("title"), tmdb_id)
        return AddResult(
            tmdb_id, str(created.get("title", "")), int(created.get("id", 0)), True, search
        )


def _messages(resp: httpx.Response) -> str:
    """Radarr's validation messages, or the start of the body."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(data, list):
        return "; ".join(str(e.get("errorMessage", e)) for e in data if isinstance(e, dict))[:500]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("errorMessage") or data)[:500]
    return str(data)[:200]
