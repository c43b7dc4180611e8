"""TMDB enrichment of the graph's movies: people (top-billed cast; directors, writers,
composers, cinematographers, producers), keywords as tags, companies, overview, poster, runtime
and original language, for every graph movie with a TMDB id.

Fetching is incremental and resumable: each answer is appended (and fsynced) to
``<home>/tmdb/movies.jsonl`` as it arrives, so a run that stops (Ctrl-C, network, rate limit)
loses nothing, and the next run fetches only what is not there yet, plus the movies TMDB lists
as changed since the last complete run (its paged ``/movie/changes``). The graph is written once,
from the whole cache, after a run completes (so a refused key writes nothing at all).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind, slug
from features.importers.merge import FrameSource
from features.importers.tmdb_client import TmdbClient

log = logging.getLogger(__name__)

POSTER_BASE = "https://image.tmdb.org/t/p/w500"
CHANGES_DAYS = 14  # how far back TMDB's change list reaches
CREW_JOBS: dict[str, EdgeKind] = {
    "Director": EdgeKind.DIRECTED,
    "Original Music Composer": EdgeKind.COMPOSED,
    "Music": EdgeKind.COMPOSED,
    "Director of Photography": EdgeKind.SHOT,
    "Producer": EdgeKind.PRODUCED,
}


class TmdbCache:
    """What TMDB answered, one JSON line per movie id (``null`` for ids TMDB does not know),
    and the date of the last complete run. Files are created on the first answer only."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.movies_path = self.folder / "movies.jsonl"
        self.state_path = self.folder / "state.json"

    def load(self) -> dict[int, dict[str, Any] | None]:
        out: dict[int, dict[str, Any] | None] = {}
        if not self.movies_path.exists():
            return out
        with self.movies_path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    out[int(row["id"])] = row["movie"]
                except (ValueError, KeyError, TypeError):
                    log.warning(
                        "%s: skipping a damaged line (an interrupted write)", self.movies_path
                    )
        return out

    def append(self, tmdb_id: int, movie: dict[str, Any] | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"id": int(tmdb_id), "movie": movie}, ensure_ascii=False)
        with self.movies_path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def last_run(self) -> date | None:
        try:
            return date.fromisoformat(json.loads(self.state_path.read_text())["last_run"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def finish_run(self, day: date) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_run": day.isoformat()}))
        tmp.replace(self.state_path)


@dataclass
class TmdbReport:
    """What one run did: graph movies with a TMDB id, answers fetched now, answers already
    cached, movies TMDB does not know, cached movies refetched because TMDB changed them."""

    wanted: int = 0
    fetched: int = 0
    cached: int = 0
    unknown: int = 0
    changed: int = 0
    waits: list[float] = field(default_factory=list)


def graph_tmdb_ids(graph: FrameSource) -> pd.DataFrame:
    """(key, tmdb_id) of the graph's movies that have a TMDB id."""
    movies = graph.vertex_frame(VertexKind.MOVIE)
    if len(movies) == 0:
        return pd.DataFrame({"key": [], "tmdb_id": []})
    ids = pd.to_numeric(movies["tmdb_id"], errors="coerce").fillna(0).astype("int64")
    keep = ids > 0
    return pd.DataFrame({"key": movies["key"][keep].astype(str), "tmdb_id": ids[keep]})


def fetch(
    client: TmdbClient,
    cache: TmdbCache,
    tmdb_ids: Iterable[int],
    *,
    today: date | None = None,
    limit: int | None = None,
) -> TmdbReport:
    """Fetch into ``cache`` what it lacks (at most ``limit`` this run) and what TMDB changed
    since the last complete run; the run counts as complete when nothing is left to fetch."""
    today = today or date.today()
    wanted = sorted(set(int(i) for i in tmdb_ids))
    have = cache.load()
    report = TmdbReport(wanted=len(wanted))
    todo = [i for i in wanted if i not in have]
    last = cache.last_run()
    if last is not None and have:
        since = max(last, today - timedelta(days=CHANGES_DAYS - 1))
        changed = set(client.changed_movies(since, today))
        again = [i for i in wanted if i in have and i in changed]
        report.changed = len(again)
        todo = again + todo
    report.cached = len(wanted) - len([i for i in todo if i not in have])
    batch = todo if limit is None else todo[:limit]
    for i, tmdb_id in enumerate(batch, start=1):
        movie = client.movie(tmdb_id)
        cache.append(tmdb_id, movie)
        report.fetched += 1
        report.unknown += movie is None
        if i % 100 == 0:
            log.info("TMDB: %d of %d movies fetched", i, len(batch))
    report.waits = list(client.waited)
    if len(batch) == len(todo):
        cache.finish_run(today)
    return report


def tmdb_batch(
    movies: pd.DataFrame, answers: dict[int, dict[str, Any] | None], *, cast: int = 10
) -> GraphBatch:
    """The graph rows TMDB's ``answers`` give for ``movies`` (key, tmdb_id): movie attributes,
    people and their edges (the first ``cast`` billed actors), keywords and companies."""
    rows: list[dict[str, Any]] = []
    people: dict[str, str] = {}
    edges: dict[EdgeKind, list[dict[str, Any]]] = {}
    tags: dict[str, str] = {}
    for key, tmdb_id in zip(movies["key"], movies["tmdb_id"], strict=True):
        m = answers.get(int(tmdb_id))
        if not m:
            continue
        rows.append(_movie_row(str(key), m))
        credits = m.get("credits") or {}
        for person in sorted(credits.get("cast") or [], key=lambda p: p.get("order", 1e9))[:cast]:
            p = _person(person, people)
            if p:
                edges.setdefault(EdgeKind.ACTED_IN, []).append(
                    {"src": p, "dst": str(key), "order": int(person.get("order") or 0)}
                )
        for person in credits.get("crew") or []:
            kind = CREW_JOBS.get(str(person.get("job")))
            if kind is None and person.get("department") == "Writing":
                kind = EdgeKind.WROTE
            p = _person(person, people) if kind is not None else ""
            if kind is not None and p:
                edges.setdefault(kind, []).append({"src": p, "dst": str(key)})
        for word in (m.get("keywords") or {}).get("keywords") or []:
            _tag(str(key), word.get("name"), EdgeKind.TAGGED, tags, edges)
        for company in m.get("production_companies") or []:
            _tag(str(key), company.get("name"), EdgeKind.MADE_BY, tags, edges)
    batch = GraphBatch()
    if rows:
        batch.add_vertices(VertexKind.MOVIE, pd.DataFrame(rows))
    if people:
        batch.add_vertices(
            VertexKind.PERSON, pd.DataFrame({"key": list(people), "name": list(people.values())})
        )
    if tags:
        batch.add_vertices(
            VertexKind.TAG, pd.DataFrame({"key": list(tags), "name": list(tags.values())})
        )
    for kind, found in edges.items():
        batch.add_edges(kind, pd.DataFrame(found).drop_duplicates(["src", "dst"]))
    return batch.deduplicated()


def _movie_row(key: str, m: dict[str, Any]) -> dict[str, Any]:
    poster = str(m.get("poster_path") or "")
    return {
        "key": key,
        "summary": str(m.get("overview") or ""),
        "poster_url": f"{POSTER_BASE}{poster}" if poster.startswith("/") else "",
        "runtime": int(m.get("runtime") or 0),
        "original_language": str(m.get("original_language") or ""),
    }


def _person(person: dict[str, Any], people: dict[str, str]) -> str:
    name = str(person.get("name") or "").strip()
    if not name:
        return ""
    key = slug(name)  # the key every source uses for a person (Plex, HetRec-style)
    people.setdefault(key, name)
    return key


def _tag(
    movie: str,
    name: object,
    kind: EdgeKind,
    tags: dict[str, str],
    edges: dict[EdgeKind, list[dict[str, Any]]],
) -> None:
    text = str(name or "").strip()
    if text:
        tags.setdefault(slug(text), text)
        edges.setdefault(kind, []).append({"src": movie, "dst": slug(text)})
