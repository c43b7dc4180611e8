"""A TMDB v3 API client on httpx: movie details with credits and keywords, and the paged
change list. Honours 429 Retry-After; the API key never appears in logs or errors.

A v3 API key travels as the ``api_key`` query parameter, a v4 read access token (a JWT,
"eyJ...") as a Bearer header; both are accepted. httpx logs every request URL at INFO, query
included, so its logger is held at WARNING while this client is in use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.themoviedb.org/3"
MAX_RETRIES = 6
MAX_WAIT_SECONDS = 120.0


class TmdbError(Exception):
    """TMDB could not be asked or answered something unusable (the message names no key)."""


class TmdbAuthError(TmdbError):
    """TMDB refused the API key (401): nothing can be fetched with it."""


class TmdbClient:
    """Use as a context manager. ``sleep`` is injectable so tests can see the waits."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key.strip():
            raise TmdbAuthError("no TMDB API key: set TMDB_API_KEY")
        key = api_key.strip()
        bearer = key.startswith("eyJ")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            params=None if bearer else {"api_key": key},
            headers={"Accept": "application/json"}
            | ({"Authorization": f"Bearer {key}"} if bearer else {}),
            timeout=timeout,
        )
        self._sleep = sleep
        self.waited: list[float] = []  # Retry-After waits honoured, in seconds
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def __enter__(self) -> TmdbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """The JSON at ``path``; None for 404. Waits out 429s (Retry-After, else backoff)."""
        for attempt in range(MAX_RETRIES + 1):
            try:
                resp = self._client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise TmdbError(f"cannot reach TMDB for {path}: {type(exc).__name__}") from None
            if resp.status_code == 429 and attempt < MAX_RETRIES:
                wait = _retry_after(resp.headers.get("Retry-After"), attempt)
                log.info("TMDB rate limit on %s: waiting %.1fs", path, wait)
                self.waited.append(wait)
                self._sleep(wait)
                continue
            if resp.status_code == 404:
                return None
            if resp.status_code == 401:
                raise TmdbAuthError(f"TMDB refused the API key (401: {_message(resp)})")
            if resp.status_code != 200:
                raise TmdbError(f"TMDB answered {resp.status_code} for {path}: {_message(resp)}")
            try:
                return resp.json()
            except ValueError:
                raise TmdbError(f"TMDB answered {path} with something that is not JSON") from None
        raise TmdbError(f"TMDB kept rate-limiting {path} after {MAX_RETRIES} waits")

    def movie(self, tmdb_id: int) -> dict[str, Any] | None:
        """Details, credits and keywords of one movie (None: TMDB does not know the id)."""
        found = self._get(f"/movie/{int(tmdb_id)}", {"append_to_response": "credits,keywords"})
        if found is not None and not isinstance(found, dict):
            raise TmdbError(f"TMDB answered /movie/{tmdb_id} with a {type(found).__name__}")
        return found

    def changed_movies(self, since: date, until: date) -> Iterator[int]:
        """Ids of movies changed in [since, until] (TMDB keeps 14 days), every page."""
        page, pages = 1, 1
        while page <= pages:
            params = {"start_date": since.isoformat(), "end_date": until.isoformat(), "page": page}
            data = self._get("/movie/changes", params) or {}
            pages = min(int(data.get("total_pages") or 1), 500)
            for row in data.get("results") or []:
                if isinstance(row, dict) and isinstance(row.get("id"), int):
                    yield int(row["id"])
            page += 1


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        wait = float(header) if header is not None else 2.0**attempt
    except ValueError:
        wait = 2.0**attempt
    return min(max(wait, 0.0), MAX_WAIT_SECONDS)


def _message(resp: httpx.Response) -> str:
    """TMDB's own status_message (never the request URL, which may hold the key)."""
    try:
        data = resp.json()
    except ValueError:
        return resp.reason_phrase or "no message"
    if isinstance(data, dict) and data.get("status_message"):
        return str(data["status_message"])[:200]
    return resp.reason_phrase or "no message"
