"""Poster images for the web pages, always served by Marquee itself (``GET /posters/{movie}``).

Sources are tried in order: the Plex library (proxied, so the Plex token never reaches the
browser), TMDB when a TMDB API key is set, the movie's own ``poster_url`` (HetRec's), and
last a poster drawn with Pillow (title and year on a colour field). What a source returns is
checked to be an image before it is kept; every result is cached on disk per movie, so a slow
or failing source costs once. A source that fails is logged (never with its secrets) and the
next one is tried: a card always gets an image.
"""

from __future__ import annotations

import hashlib
import io
import logging
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

MAX_POSTER_BYTES = 5 * 1024 * 1024
SIZE = (342, 513)


@dataclass(frozen=True)
class MovieInfo:
    """What the sources need to find a movie's poster."""

    key: str
    title: str
    year: int | None = None
    tmdb_id: int | None = None
    poster_url: str | None = None


@dataclass(frozen=True)
class Poster:
    """An image's bytes, its content type, and the source that gave it."""

    data: bytes
    content_type: str
    source: str


class PosterSource:
    """One place posters come from; ``fetch`` returns raw bytes or None (not found)."""

    name = "source"

    def fetch(self, movie: MovieInfo) -> bytes | None:
        raise NotImplementedError


def _get_image(client: httpx.Client, url: str, **kwargs: object) -> bytes | None:
    res = client.get(url, **kwargs)  # type: ignore[arg-type]
    if res.status_code == 404:
        return None
    res.raise_for_status()
    if len(res.content) > MAX_POSTER_BYTES:
        raise ValueError(f"image of {len(res.content)} bytes is too large")
    return res.content


class PlexPosters(PosterSource):
    """The movie's thumb in the Plex library, found through the Plex sync's key map
    (``rating_key_of``: graph movie key -> Plex ratingKey). The token goes in a header."""

    name = "plex"

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        token: str,
        rating_key_of: Callable[[str], str | None],
    ) -> None:
        self._client, self._base, self._token = client, base_url.rstrip("/"), token
        self._rating_key_of = rating_key_of

    def fetch(self, movie: MovieInfo) -> bytes | None:
        rk = self._rating_key_of(movie.key)
        if rk is None:
            return None
        return _get_image(
            self._client,
            f"{self._base}/library/metadata/{rk}/thumb",
            headers={"X-Plex-Token": self._token, "Accept": "image/*"},
        )


class TmdbPosters(PosterSource):
    """TMDB's v3 API: the movie's ``poster_path`` (by TMDB id, else a title+year search),
    then the image from TMDB's image server."""

    name = "tmdb"

    def __init__(self, client: httpx.Client, api_key: str, api_url: str, image_url: str) -> None:
        self._client, self._key = client, api_key
        self._api, self._images = api_url.rstrip("/"), image_url.rstrip("/")

    def _poster_path(self, movie: MovieInfo) -> str | None:
        params = {"api_key": self._key}
        if movie.tmdb_id:
            res = self._client.get(f"{self._api}/movie/{movie.tmdb_id}", params=params)
            if res.status_code != 404:
                res.raise_for_status()
                return res.json().get("poster_path") or None
        query = {**params, "query": movie.title}
        if movie.year:
            query["year"] = str(movie.year)
        res = self._client.get(f"{self._api}/search/movie", params=query)
        res.raise_for_status()
        for hit in res.json().get("results") or []:
            if hit.get("poster_path"):
                return str(hit["poster_path"])
        return None

    def fetch(self, movie: MovieInfo) -> bytes | None:
        path = self._poster_path(movie)
        return _get_image(self._client, f"{self._images}{path}") if path else None


class UrlPosters(PosterSource):
    """The poster URL the dataset gave (HetRec's IMDb poster links)."""

    name = "url"

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def fetch(self, movie: MovieInfo) -> bytes | None:
        url = movie.poster_url or ""
        if not url.startswith(("http://", "https://")):
            return None
        return _get_image(self._client, url)


def _colour(key: str) -> tuple[int, int, int]:
    """A stable, fairly dark colour per movie, so white text reads on it."""
    digest = hashlib.sha256(key.encode()).digest()
    return (40 + digest[0] % 120, 40 + digest[1] % 120, 40 + digest[2] % 120)


def generated_poster(movie: MovieInfo) -> bytes:
    """Title and year in white on a colour field (PNG)."""
    img = Image.new("RGB", SIZE, _colour(movie.key))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=34)
        small = ImageFont.load_default(size=26)
    except TypeError:  # Pillow without FreeType sizes
        font = small = ImageFont.load_default()
    y = 60
    for line in textwrap.wrap(movie.title or movie.key, width=14)[:6]:
        draw.text((24, y), line, fill="white", font=font)
        y += 44
    if movie.year:
        draw.text((24, y + 16), str(movie.year), fill=(230, 230, 230), font=small)
    draw.rectangle((0, SIZE[1] - 12, SIZE[0], SIZE[1]), fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _checked(data: bytes) -> str:
    """The image's content type; ValueError when the bytes are not an image Pillow reads."""
    with Image.open(io.BytesIO(data)) as img:
        img.verify()
        kind = (img.format or "").lower()
    return {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
        kind, "application/octet-stream"
    )


class PosterService:
    """Tries the sources in order, falls back to a generated poster, caches each result."""

    def __init__(self, sources: Sequence[PosterSource], cache_dir: Path) -> None:
        self.sources = list(sources)
        self._dir = cache_dir
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self._dir / hashlib.sha256(key.encode()).hexdigest()[:32]

    def poster(self, movie: MovieInfo) -> Poster:
        path = self._path(movie.key)
        if path.exists():
            source, _, ctype = path.with_suffix(".type").read_text().partition(" ")
            return Poster(path.read_bytes(), ctype, source)
        poster = self._find(movie)
        with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(poster.data)
            path.with_suffix(".type").write_text(f"{poster.source} {poster.content_type}")
            tmp.replace(path)
        return poster

    def _find(self, movie: MovieInfo) -> Poster:
        for source in self.sources:
            try:
                data = source.fetch(movie)
                if data is None:
                    continue
                return Poster(data, _checked(data), source.name)
            except Exception as exc:  # any failure: the next source (logged without URLs)
                log.warning(
                    "poster source %s failed for movie %s: %s",
                    source.name,
                    movie.key,
                    type(exc).__name__,
                )
        return Poster(generated_poster(movie), "image/png", "generated")
