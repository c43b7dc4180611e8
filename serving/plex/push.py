"""Recommendations -> Plex: a "Recommended for <user>" collection or playlist, updated in place.

Recommendations are plain data (movie key, score, reason), from a callable, a mapping, or a
JSON file, so this module does not depend on the recommender. Movies Plex does not hold are
reported back as ``missing`` (the placeholder library can show those).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from plexapi.collection import Collection
from plexapi.server import PlexServer
from plexapi.video import Movie

from serving.plex.client import PlexError, plex_errors, safe_url

log = logging.getLogger(__name__)

PushMode = Literal["collection", "playlist"]


class RecommendationFileError(ValueError):
    """A recommendations file that cannot be used; the message names the file and entry."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended movie: graph key, score in [0, 1], and a sentence saying why."""

    movie: str
    score: float
    reason: str = ""
    title: str = ""
    year: int = 0


@dataclass
class PushResult:
    title: str
    pushed: list[str] = field(default_factory=list)  # graph keys now in the list, in order
    missing: list[str] = field(default_factory=list)  # graph keys Plex does not hold


def list_title(user: str) -> str:
    return f"Recommended for {user}"


def _parse_entry(path: Path, user: str, i: int, raw: Any) -> Recommendation:
    where = f"{path}: {user!r} entry {i}"
    if not isinstance(raw, dict):
        raise RecommendationFileError(f"{where}: expected an object, got {type(raw).__name__}")
    movie = raw.get("movie")
    if not isinstance(movie, str | int) or str(movie).strip() == "":
        raise RecommendationFileError(f"{where}: 'movie' (a graph movie key) is missing")
    score = raw.get("score", 0.0)
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise RecommendationFileError(f"{where}: 'score' must be a number, got {score!r}")
    if not 0.0 <= float(score) <= 1.0:
        raise RecommendationFileError(f"{where}: 'score' must be within [0, 1], got {score}")
    year = raw.get("year", 0)
    if not isinstance(year, int):
        raise RecommendationFileError(f"{where}: 'year' must be an integer, got {year!r}")
    return Recommendation(
        movie=str(movie),
        score=float(score),
        reason=str(raw.get("reason", "")),
        title=str(raw.get("title", "")),
        year=year,
    )


def load_recommendations(path: Path) -> dict[str, list[Recommendation]]:
    """Read ``{"<plex account name>": [{"movie": key, "score": 0.9, "reason": "..."}]}``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecommendationFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise RecommendationFileError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise RecommendationFileError(f"{path}: expected an object mapping user names to lists")
    out: dict[str, list[Recommendation]] = {}
    for user, entries in raw.items():
        if not isinstance(entries, list):
            raise RecommendationFileError(f"{path}: {user!r} must map to a list")
        out[str(user)] = [_parse_entry(path, user, i, e) for i, e in enumerate(entries)]
    return out


class PlexPusher:
    """Writes per-user recommendation lists into one Plex server."""

    def __init__(self, server: PlexServer, rating_keys: Mapping[str, str]) -> None:
        """``rating_keys`` maps graph movie keys to Plex ratingKeys (from the sync state)."""
        self.server = server
        self.rating_keys = dict(rating_keys)
        self._url = safe_url(server._baseurl)

    def _movie_section(self, name: str | None) -> Any:
        from serving.plex.placeholders import LIBRARY_NAME

        with plex_errors(self._url, "listing libraries"):
            sections = [s for s in self.server.library.sections() if s.type == "movie"]
        if name is not None:
            sections = [s for s in sections if s.title == name]
        else:  # never the placeholder library (only --section can name it)
            sections = [s for s in sections if not s.title.startswith(LIBRARY_NAME)]
        if not sections:
            raise PlexError(
                f"Plex at {self._url} has no movie library" + (f" named {name!r}" if name else "")
            )
        return sections[0]

    def _movies(
        self, recs: Sequence[Recommendation], limit: int, ordered: bool, target: PlexServer
    ) -> tuple[list[Movie], PushResult]:
        result = PushResult(title="")
        wanted: list[int] = []
        for rec in recs if ordered else sorted(recs, key=lambda r: -r.score):
            rk = self.rating_keys.get(rec.movie)
            if rk is None or not rk.isdigit():
                result.missing.append(rec.movie)
            elif len(wanted) < limit and int(rk) not in wanted:
                wanted.append(int(rk))
                result.pushed.append(rec.movie)
        if not wanted:
            return [], result
        with plex_errors(self._url, f"fetching {len(wanted)} recommended movies"):
            found = {m.ratingKey: m for m in target.fetchItems(wanted, cls=Movie)}
        by_rk = {int(self.rating_keys[k]): k for k in result.pushed}
        movies = [found[rk] for rk in wanted if rk in found]
        gone = [by_rk[rk] for rk in wanted if rk not in found]
        result.pushed = [k for k in result.pushed if k not in gone]
        result.missing.extend(gone)
        return movies, result

    def push(
        self,
        user: str,
        recs: Sequence[Recommendation],
        *,
        mode: PushMode = "collection",
        section: str | None = None,
        limit: int = 20,
        ordered: bool = False,
        as_user: PlexServer | None = None,
        label: str | None = None,
        summary: str = "",
    ) -> PushResult:
        """Bring the user's list to ``recs`` in place, best score first (``ordered``: in the given
        order, a recommender's slate). New movies are added, gone ones removed, the rest moved
        into order, so the list keeps its ratingKey, poster and Home pin. An empty list removes
        it. Playlists are made as ``as_user`` (that person's own server sign-in; default: the
        owner); collections carry ``label`` (which sharing filters hide from the others)."""
        title = list_title(user)
        target = as_user or self.server
        movies, result = self._movies(recs, limit, ordered, target)
        result.title = title
        if mode == "collection":
            lib = self._movie_section(section)
            with plex_errors(self._url, f"looking up collection {title!r}"):
                olds = [
                    c
                    for c in self.server.fetchItems(
                        f"/library/sections/{lib.key}/all", cls=Collection, params={"type": 18}
                    )
                    if c.title == title
                ]
            self._write(
                self._url,
                "collection",
                title,
                olds,
                movies,
                lambda: self.server.createCollection(title, lib, items=movies),
                summary,
                label,
            )
        elif mode == "playlist":
            where = safe_url(target._baseurl)
            with plex_errors(where, f"looking up playlist {title!r}"):
                olds = [p for p in target.playlists(title=title) if p.title == title]
            self._write(
                where,
                "playlist",
                title,
                olds,
                movies,
                lambda: target.createPlaylist(title, items=movies),
                summary,
                None,
            )
        else:
            raise ValueError(f"mode must be 'collection' or 'playlist', not {mode!r}")
        log.info(
            "pushed %d recommendations to Plex %s %r (%d not in Plex)",
            len(result.pushed),
            mode,
            title,
            len(result.missing),
        )
        return result

    @classmethod
    def _write(
        cls,
        where: str,
        kind: str,
        title: str,
        olds: list[Any],
        movies: Sequence[Movie],
        create: Callable[[], Any],
        summary: str,
        label: str | None,
    ) -> None:
        """Bring the list to ``movies``, each write a named operation, so an unexpected answer
        from Plex is one line saying which write it refused (creating, removing, updating)."""
        name = f"{kind} {title!r}"
        with plex_errors(where, f"removing a duplicate {name}"):
            for extra in olds[1:]:  # duplicates left by older versions
                extra.delete()
        if not movies:
            with plex_errors(where, f"removing the emptied {name}"):
                for old in olds[:1]:
                    old.delete()
            return
        if not olds:
            with plex_errors(where, f"creating {name}"):
                lst = create()
        else:
            lst = olds[0]
            with plex_errors(where, f"updating the movies of {name}"):
                cls._update(lst, movies)
        with plex_errors(where, f"ordering and describing {name}"):
            cls._finish(lst, movies, summary, label, collection=kind == "collection")

    @staticmethod
    def _update(lst: Any, movies: Sequence[Movie]) -> None:
        """Remove what left, add what is new (kept list, kept ratingKey)."""
        wanted = {m.ratingKey for m in movies}
        have = list(lst.items())
        gone = [m for m in have if m.ratingKey not in wanted]
        if gone:
            lst.removeItems(gone)
        held = {m.ratingKey for m in have}
        new = [m for m in movies if m.ratingKey not in held]
        if new:
            lst.addItems(new)

    @staticmethod
    def _finish(
        lst: Any, movies: Sequence[Movie], summary: str, label: str | None, *, collection: bool
    ) -> None:
        """Custom order (collections), items moved into Marquee's order, summary and label."""
        lst.reload()
        if collection and lst.collectionSort != 2:
            lst.sortUpdate("custom")
        current = [m.ratingKey for m in lst.items()]
        for i, movie in enumerate(movies):
            if i < len(current) and current[i] == movie.ratingKey:
                continue
            lst.moveItem(movie, after=movies[i - 1] if i else None)
            current.remove(movie.ratingKey)
            current.insert(i, movie.ratingKey)
        if summary and (lst.summary or "") != summary:
            lst.editSummary(summary)
        if label and label not in {t.tag for t in getattr(lst, "labels", [])}:
            lst.addLabel(label)
