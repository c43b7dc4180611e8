"""Matching Plex items to graph movie keys, and Plex accounts to graph user keys.

A Plex movie is matched to a movie already in the graph by IMDb id, then TMDB id, then
(title, year); a movie the graph does not hold gets a new key from the best id Plex gives:
"imdb-tt0114709", "tmdb-862", else "plex-<ratingKey>".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from features.graph.schema import VertexKind, slug
from features.graph.store import GraphStore


@dataclass(frozen=True)
class PlexRef:
    """What identifies one Plex movie: its ratingKey plus any external ids Plex knows."""

    rating_key: str
    title: str = ""
    year: int = 0
    imdb_id: str = ""  # "tt0114709"
    tmdb_id: int = 0
    plex_guid: str = ""  # "plex://movie/5d776..."


def parse_guids(guids: Iterable[str]) -> dict[str, str]:
    """{'imdb': 'tt0114709', 'tmdb': '862', 'plex': 'movie/5d77...'} from Guid ids.

    Accepts the new agent's "imdb://tt..", "tmdb://..", "plex://movie/.." and the legacy
    "com.plexapp.agents.imdb://tt0114709?lang=en" forms.
    """
    out: dict[str, str] = {}
    for raw in guids:
        if not raw or "://" not in raw:
            continue
        scheme, rest = raw.split("://", 1)
        scheme = scheme.rsplit(".", 1)[-1].lower()
        scheme = {"themoviedb": "tmdb"}.get(scheme, scheme)
        value = rest.split("?", 1)[0].strip("/")
        if scheme in ("imdb", "tmdb", "plex") and value and scheme not in out:
            out[scheme] = value
    return out


def make_ref(
    rating_key: object, title: str | None, year: int | None, guids: Iterable[str]
) -> PlexRef:
    """A PlexRef from the raw pieces plexapi (or a webhook payload) gives."""
    ids = parse_guids(guids)
    tmdb = ids.get("tmdb", "")
    imdb = ids.get("imdb", "")
    return PlexRef(
        rating_key=str(rating_key),
        title=title or "",
        year=int(year or 0),
        imdb_id=imdb if imdb.startswith("tt") else "",
        tmdb_id=int(tmdb) if tmdb.isdigit() else 0,
        plex_guid=f"plex://{ids['plex']}" if "plex" in ids else "",
    )


def new_movie_key(ref: PlexRef) -> str:
    """The key a movie the graph does not hold yet gets."""
    if ref.imdb_id:
        return f"imdb-{ref.imdb_id}"
    if ref.tmdb_id:
        return f"tmdb-{ref.tmdb_id}"
    return f"plex-{slug(ref.rating_key)}"


def user_key(account_name: str) -> str:
    """The graph key of a Plex account, by name (webhooks and history both know the name)."""
    return f"plex-{slug(account_name)}"


def _title_key(title: str, year: int) -> tuple[str, int]:
    return (slug(title), int(year))


class MovieIndex:
    """Looks up graph movie keys by IMDb id, TMDB id, (title, year), or a known ratingKey."""

    def __init__(self, movies: pd.DataFrame, known: Mapping[str, str] | None = None) -> None:
        self._by_imdb: dict[str, str] = {}
        self._by_tmdb: dict[int, str] = {}
        self._by_title: dict[tuple[str, int], str] = {}
        self._known: dict[str, str] = dict(known or {})  # ratingKey -> graph key
        for row in movies.itertuples(index=False):
            self.add(
                str(row.key),
                imdb_id=str(getattr(row, "imdb_id", "") or ""),
                tmdb_id=int(getattr(row, "tmdb_id", 0) or 0),
                title=str(getattr(row, "title", "") or ""),
                year=int(getattr(row, "year", 0) or 0),
            )

    @classmethod
    def from_store(cls, store: GraphStore, known: Mapping[str, str] | None = None) -> MovieIndex:
        return cls(store.vertex_frame(VertexKind.MOVIE), known)

    def add(
        self, key: str, *, imdb_id: str = "", tmdb_id: int = 0, title: str = "", year: int = 0
    ) -> None:
        """Register one graph movie (first registration of an id wins)."""
        if imdb_id:
            self._by_imdb.setdefault(imdb_id, key)
        if tmdb_id:
            self._by_tmdb.setdefault(int(tmdb_id), key)
        if title:
            self._by_title.setdefault(_title_key(title, year), key)

    def remember(self, rating_key: str, key: str) -> None:
        """Record that a Plex ratingKey is this graph movie."""
        self._known[str(rating_key)] = key

    def known(self, rating_key: str) -> str | None:
        """The graph key recorded for a ratingKey, if any."""
        return self._known.get(str(rating_key))

    def find(self, ref: PlexRef) -> str | None:
        """The graph key of an existing movie matching ``ref``, or None."""
        if ref.imdb_id and ref.imdb_id in self._by_imdb:
            return self._by_imdb[ref.imdb_id]
        if ref.tmdb_id and ref.tmdb_id in self._by_tmdb:
            return self._by_tmdb[ref.tmdb_id]
        if ref.rating_key in self._known:
            return self._known[ref.rating_key]
        if ref.title and ref.year:
            return self._by_title.get(_title_key(ref.title, ref.year))
        return None

    def resolve(self, ref: PlexRef) -> str:
        """The existing key, else the new key this movie gets."""
        return self.find(ref) or new_movie_key(ref)
