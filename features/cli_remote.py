"""``marquee ingest tmdb`` and ``marquee ingest trakt``: data fetched from web APIs.

Both read their secrets from the environment (TMDB_API_KEY; TRAKT_CLIENT_ID and
TRAKT_CLIENT_SECRET), keep what they fetch or are given (TMDB answers, Trakt tokens) in the home
folder, and write the graph once, after everything was fetched. TMDB_API_URL and TRAKT_API_URL
point them at another server (a proxy, or the tests' stand-ins).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.cli import _home, _ingest, _open, err, ingest_app, out

if TYPE_CHECKING:
    from features.graph.batch import GraphBatch
    from features.graph.store import GraphStore

log = logging.getLogger(__name__)


@ingest_app.command("tmdb")
def ingest_tmdb(
    ctx: typer.Context,
    cast: Annotated[int, typer.Option(min=0, help="Top-billed actors kept per movie.")] = 10,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Fetch at most this many movies this run.")
    ] = None,
) -> None:
    """Enrich graph movies that have a TMDB id with cast, crew, keywords, companies, overview,
    poster, runtime and original language (TMDB v3 API, key from TMDB_API_KEY). Incremental
    and resumable: answers are kept in <home>/tmdb; a rerun fetches only what is missing and
    what TMDB changed since the last complete run."""
    from features.importers.tmdb import TmdbCache, fetch, graph_tmdb_ids, tmdb_batch
    from features.importers.tmdb_client import DEFAULT_URL, TmdbClient, TmdbError

    home = _home(ctx)
    cache = TmdbCache(home.root / "tmdb")
    key = os.environ.get("TMDB_API_KEY", "")
    url = os.environ.get("TMDB_API_URL", DEFAULT_URL)
    try:
        with _open(home) as store:
            movies = graph_tmdb_ids(store)
        if len(movies) == 0:
            err.print("error: no graph movie has a TMDB id (import MovieLens with links.csv first)")
            raise typer.Exit(2)
        with TmdbClient(key, url) as client, err.status("Fetching from TMDB ..."):
            report = fetch(client, cache, movies["tmdb_id"], limit=limit)
    except TmdbError as exc:
        kept = len(cache.load())
        hint = f" ({kept:,} answers kept in {cache.folder}; run again to resume)" if kept else ""
        err.print(f"error: {exc}{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    left = report.wanted - report.cached - report.fetched + report.changed
    out.print(
        f"TMDB: {report.fetched:,} movies fetched ({report.changed:,} changed since the last "
        f"run, {report.unknown:,} unknown to TMDB), {report.cached:,} already kept; "
        f"{max(left, 0):,} left for the next run.",
        highlight=False,
        soft_wrap=True,
    )
    if report.waits:
        out.print(f"TMDB rate limit: waited {len(report.waits)} times, {sum(report.waits):.0f}s")

    def build(store: GraphStore) -> GraphBatch:
        return tmdb_batch(graph_tmdb_ids(store), cache.load(), cast=cast)

    _ingest(ctx, "TMDB", None, build)


@ingest_app.command("trakt")
def ingest_trakt(
    ctx: typer.Context,
    login: Annotated[
        bool, typer.Option("--login", help="Authorise Marquee on Trakt first (device code).")
    ] = False,
    user: Annotated[
        str | None, typer.Option(help="Graph user key (default: trakt-<Trakt username>).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read the whole history, not only what is new.")
    ] = False,
) -> None:
    """Import a Trakt user's watched history and ratings onto graph movies with the same IMDb
    or TMDB id. Needs TRAKT_CLIENT_ID and TRAKT_CLIENT_SECRET (a Trakt API app); tokens are
    kept in <home>/trakt and refreshed."""
    from features.importers.trakt import epoch, trakt_batch
    from features.importers.trakt_client import DEFAULT_URL, TokenStore, TraktClient, TraktError

    home = _home(ctx)
    folder = home.root / "trakt"
    state_path = folder / "state.json"
    tokens = TokenStore(folder / "token.json")
    since = None if full else _load_state(state_path).get("history_since")
    try:
        with TraktClient(
            os.environ.get("TRAKT_CLIENT_ID", ""),
            os.environ.get("TRAKT_CLIENT_SECRET", ""),
            tokens,
            os.environ.get("TRAKT_API_URL", DEFAULT_URL),
        ) as client:
            if login or tokens.load() is None:
                code = client.device_code()
                err.print(
                    f"Open {code.verification_url} and enter the code {code.user_code} "
                    f"(valid {code.expires_in // 60} minutes); waiting ...",
                    highlight=False,
                )
                client.wait_for_token(code)
                err.print("Trakt: authorised.", highlight=False)
            name = client.username()
            params = {"start_at": since} if since else None
            history = list(client.pages("/sync/history/movies", params=params))
            ratings = list(client.pages("/sync/ratings/movies"))
    except TraktError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    key = user or f"trakt-{name or 'user'}"
    reports: list[Any] = []

    def build(store: GraphStore) -> GraphBatch:
        batch, report = trakt_batch(key, history, ratings, store)
        reports.append(report)
        return batch

    _ingest(ctx, f"Trakt ({key})", None, build)
    r = reports[0]
    out.print(
        f"Trakt: {r.history:,} plays and {r.ratings:,} ratings read; {r.watched:,} movies "
        f"watched and {r.rated:,} rated in the graph; {r.unmatched:,} entries match no graph "
        f"movie, {r.bad:,} unusable.",
        highlight=False,
        soft_wrap=True,
    )
    stamps = [(t, str(h["watched_at"])) for h in history if (t := epoch(h.get("watched_at")))]
    if stamps:
        _save_state(state_path, {"history_since": max(stamps)[1]})
    elif since is None:
        _save_state(state_path, {"history_since": datetime.now(UTC).isoformat()})


def _load_state(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(path: Any, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(path)
