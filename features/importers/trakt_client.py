"""A Trakt API v2 client on httpx: device-code OAuth with tokens kept (mode 600) in the home
folder and refreshed before they expire (or when Trakt says 401), and paged reads of a user's
watched history and ratings. 429 waits for Retry-After. Tokens, the client secret and device
codes never appear in logs or errors.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.trakt.tv"
PAGE_LIMIT = 100
MAX_RETRIES = 6
REFRESH_MARGIN_SECONDS = 24 * 3600  # refresh a day before the token expires


class TraktError(Exception):
    """Trakt could not be asked or refused (the message holds no secret)."""


class TraktAuthError(TraktError):
    """The client id/secret or the saved tokens were refused: authorise again."""


@dataclass(frozen=True)
class DeviceCode:
    """What the user must do: open ``verification_url`` and type ``user_code``."""

    device_code: str
    user_code: str
    verification_url: str
    expires_in: int
    interval: int


class TokenStore:
    """The OAuth tokens as Trakt gave them, in one JSON file only the owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("access_token") else None

    def save(self, token: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(token, fh)
        tmp.replace(self.path)


class TraktClient:
    """Use as a context manager. ``sleep`` and ``now`` are injectable for tests."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        tokens: TokenStore,
        base_url: str = DEFAULT_URL,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not client_id.strip() or not client_secret.strip():
            raise TraktAuthError("set TRAKT_CLIENT_ID and TRAKT_CLIENT_SECRET (a Trakt API app)")
        self._id, self._secret = client_id.strip(), client_secret.strip()
        self.tokens = tokens
        self._sleep, self._now = sleep, now
        self.waited: list[float] = []
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Content-Type": "application/json",
                "trakt-api-version": "2",
                "trakt-api-key": self._id,
            },
            timeout=20.0,
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def __enter__(self) -> TraktClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request, 429s waited out; transport errors become TraktError."""
        for attempt in range(MAX_RETRIES + 1):
            try:
                resp = self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise TraktError(f"cannot reach Trakt for {path}: {type(exc).__name__}") from None
            if resp.status_code != 429 or attempt == MAX_RETRIES:
                return resp
            try:
                wait = float(resp.headers.get("Retry-After", 2.0**attempt))
            except ValueError:
                wait = 2.0**attempt
            self.waited.append(wait)
            log.info("Trakt rate limit on %s: waiting %.1fs", path, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    # --- device-code OAuth -------------------------------------------------------------

    def device_code(self) -> DeviceCode:
        resp = self._send("POST", "/oauth/device/code", json={"client_id": self._id})
        if resp.status_code != 200:
            raise _refused(resp, "/oauth/device/code")
        d = resp.json()
        return DeviceCode(
            str(d["device_code"]),
            str(d["user_code"]),
            str(d["verification_url"]),
            int(d.get("expires_in", 600)),
            int(d.get("interval", 5)),
        )

    def wait_for_token(self, code: DeviceCode) -> dict[str, Any]:
        """Poll until the user approves (then save the tokens), denies or the code expires."""
        interval = max(code.interval, 1)
        deadline = self._now() + code.expires_in
        body = {"code": code.device_code, "client_id": self._id, "client_secret": self._secret}
        while self._now() < deadline:
            resp = self._send("POST", "/oauth/device/token", json=body)
            if resp.status_code == 200:
                token = _stamped(resp.json(), self._now())
                self.tokens.save(token)
                return token
            if resp.status_code == 400:  # pending: the user has not approved yet
                self._sleep(interval)
                continue
            if resp.status_code == 418:
                raise TraktAuthError("the Trakt user denied access")
            if resp.status_code in (404, 409, 410):
                what = {404: "is not valid", 409: "was already used", 410: "expired"}
                raise TraktAuthError(f"the device code {what[resp.status_code]}; start again")
            raise _refused(resp, "/oauth/device/token")
        raise TraktAuthError("the device code expired before the user approved it")

    def _refresh(self, token: dict[str, Any]) -> dict[str, Any]:
        body = {
            "refresh_token": token.get("refresh_token", ""),
            "client_id": self._id,
            "client_secret": self._secret,
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "grant_type": "refresh_token",
        }
        resp = self._send("POST", "/oauth/token", json=body)
        if resp.status_code != 200:
            raise TraktAuthError(
                f"Trakt refused to refresh the saved token ({resp.status_code}); "
                "run `marquee ingest trakt --login` again"
            )
        fresh = _stamped(resp.json(), self._now())
        self.tokens.save(fresh)
        log.info("Trakt: access token refreshed")
        return fresh

    def _access_token(self, *, force_refresh: bool = False) -> str:
        token = self.tokens.load()
        if token is None:
            raise TraktAuthError("not logged in to Trakt: run `marquee ingest trakt --login`")
        expires = float(token.get("created_at", 0)) + float(token.get("expires_in", 0))
        if force_refresh or self._now() > expires - REFRESH_MARGIN_SECONDS:
            token = self._refresh(token)
        return str(token["access_token"])

    # --- reads ---------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self._access_token()}"}
        resp = self._send("GET", path, params=params, headers=auth)
        if resp.status_code == 401:  # revoked or expired early: refresh once and retry
            auth = {"Authorization": f"Bearer {self._access_token(force_refresh=True)}"}
            resp = self._send("GET", path, params=params, headers=auth)
        if resp.status_code != 200:
            raise _refused(resp, path)
        return resp

    def pages(
        self, path: str, limit: int = PAGE_LIMIT, params: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following X-Pagination-Page-Count."""
        page, count = 1, 1
        while page <= count:
            resp = self._get(path, {**(params or {}), "page": page, "limit": limit})
            count = int(resp.headers.get("X-Pagination-Page-Count", page))
            rows = resp.json()
            if not isinstance(rows, list):
                raise TraktError(f"Trakt answered {path} with a {type(rows).__name__}, not a list")
            yield from (r for r in rows if isinstance(r, dict))
            page += 1

    def username(self) -> str:
        data = self._get("/users/settings", {}).json()
        return str(((data or {}).get("user") or {}).get("username") or "")


def _stamped(token: dict[str, Any], now: float) -> dict[str, Any]:
    if not isinstance(token, dict) or not token.get("access_token"):
        raise TraktError("Trakt answered the token request without an access token")
    token.setdefault("created_at", int(now))
    return token


def _refused(resp: httpx.Response, path: str) -> TraktError:
    """An error naming the call and Trakt's answer (status and its short error text)."""
    detail = ""
    try:
        data = resp.json()
        if isinstance(data, dict):
            detail = str(data.get("error_description") or data.get("error") or "")[:200]
    except ValueError:
        pass
    text = f"Trakt answered {resp.status_code} for {path}" + (f": {detail}" if detail else "")
    return TraktAuthError(text) if resp.status_code in (401, 403) else TraktError(text)
