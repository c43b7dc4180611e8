"""``marquee plex ...``: sync a Plex server into the graph, push recommendations, poll history.

Settings come from PLEX_URL and PLEX_TOKEN; the home folder (graph, state) from ``ctx.obj``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from marquee.home import Home, resolve_home

if TYPE_CHECKING:
    from plexapi.server import PlexServer

    from features.graph.store import GraphStore

plex_app = typer.Typer(
    help="Plex: learn from what people watch, put recommendations where they watch. "
    "Needs PLEX_URL and PLEX_TOKEN.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for Plex.")]


def _home(ctx: typer.Context) -> Home:
    obj = ctx.obj
    return obj if isinstance(obj, Home) else resolve_home(None)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _server(timeout: float) -> PlexServer:
    from serving.plex.client import PlexError, PlexSettings, connect

    try:
        return connect(PlexSettings.from_env(timeout=timeout))
    except PlexError as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _store(home: Home) -> Iterator[GraphStore]:
    from features.graph.factory import open_store

    home.ensure()
    store = open_store(home)
    try:
        yield store
    finally:
        store.close()


@plex_app.command("sync")
def sync(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option("--full", help="Ignore the watermarks; read everything.")
    ] = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Read every movie library and every account's watch history and ratings into the graph.

    Incremental: only what changed since the last sync (watermarks in <home>/plex/state.json,
    saved only after the graph accepted the batch).
    """
    from features.graph.batch import GraphDataError
    from features.graph.store import GraphStoreError
    from serving.plex.client import PlexError
    from serving.plex.state import PlexStateError, state_path
    from serving.plex.sync import PlexSync

    home = _home(ctx)
    server = _server(timeout)
    try:
        with _store(home) as store:
            report = PlexSync(server, store, state_path(home)).run(full=full)
    except (PlexError, PlexStateError, GraphDataError, GraphStoreError) as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"Plex sync: {report.movies} movies ({report.new_movies} new to the graph), "
        f"{report.watched} watched, {report.rated} rated, {report.skipped_history} history "
        "entries skipped."
    )


@plex_app.command("push")
def push(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Option(
            "--from",
            help='JSON file of recommendations: {"<plex account name>": [{"movie": "<graph key>", '
            '"score": 0.93, "reason": "..."}]}. For now recommendations come only from such a '
            "file; the recommender service will feed this command later.",
            exists=False,
        ),
    ],
    mode: Annotated[str, typer.Option(help="'collection' or 'playlist'.")] = "collection",
    section: Annotated[str | None, typer.Option(help="Movie library for collections.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Movies per list.")] = 20,
    placeholders: Annotated[
        Path | None,
        typer.Option(
            help="Also keep a 'Recommendations' library of placeholders in this folder for "
            "recommended movies Plex does not hold (needs ffmpeg; Plex must see the folder)."
        ),
    ] = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Refresh "Recommended for <user>" in Plex from a recommendations file (--from)."""
    from serving.plex.client import PlexError
    from serving.plex.push import PlexPusher, RecommendationFileError, load_recommendations
    from serving.plex.state import PlexStateError, load_state, state_path

    if mode not in ("collection", "playlist"):
        raise _fail(f"--mode must be 'collection' or 'playlist', not {mode!r}", code=2)
    home = _home(ctx)
    try:
        recs = load_recommendations(source)
        state = load_state(state_path(home))
    except (RecommendationFileError, PlexStateError) as exc:
        raise _fail(str(exc), code=2) from None
    if not state.movie_keys:
        raise _fail("no Plex movies known yet: run `marquee plex sync` first", code=2)
    server = _server(timeout)
    rating_keys = {g: rk for rk, g in state.movie_keys.items()}
    pusher = PlexPusher(server, rating_keys)
    missing: dict[str, float] = {}
    reasons: dict[str, str] = {}
    try:
        for user, user_recs in recs.items():
            result = pusher.push(user, user_recs, mode=mode, section=section, limit=limit)  # type: ignore[arg-type]
            out.print(
                f"{result.title}: {len(result.pushed)} movies, {len(result.missing)} not in Plex"
            )
            for r in user_recs:
                if r.movie in result.missing and r.score > missing.get(r.movie, -1.0):
                    missing[r.movie] = r.score
                    reasons[r.movie] = r.reason
        if placeholders is not None:
            _placeholders(home, server, placeholders, missing, reasons, set(rating_keys))
    except PlexError as exc:
        raise _fail(str(exc)) from None


def _placeholders(
    home: Home,
    server: PlexServer,
    folder: Path,
    scores: dict[str, float],
    reasons: dict[str, str],
    in_plex: set[str],
) -> None:
    from features.graph.schema import VertexKind
    from serving.plex.placeholders import (
        PlaceholderError,
        PlaceholderLibrary,
        PlaceholderMovie,
        ensure_plex_library,
    )

    movies = []
    with _store(home) as store:
        for key, score in scores.items():
            v = store.vertex(VertexKind.MOVIE, key) or {}
            movies.append(
                PlaceholderMovie(
                    key=key,
                    title=str(v.get("title") or key),
                    year=int(v.get("year") or 0),  # type: ignore[call-overload]
                    imdb_id=str(v.get("imdb_id") or ""),
                    tmdb_id=int(v.get("tmdb_id") or 0),  # type: ignore[call-overload]
                    plot=str(v.get("summary") or ""),
                    reason=reasons.get(key, ""),
                    score=score,
                )
            )
    try:
        report = PlaceholderLibrary(folder).sync(movies, in_plex=in_plex)
    except PlaceholderError as exc:
        raise _fail(str(exc)) from None
    ensure_plex_library(server, folder.resolve())
    out.print(f"placeholders: {len(report.written)} written, {len(report.removed)} removed")


@plex_app.command("poll")
def poll(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(min=5.0, help="Seconds between polls.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Poll watch history (for servers without Plex Pass webhooks) and print new events as JSON
    lines. The service's Redis-backed sink takes them when it runs the poller itself."""
    from features.graph.store import GraphStoreError
    from serving.feedback.sink import InMemoryFeedbackSink
    from serving.plex.client import PlexError
    from serving.plex.ids import MovieIndex
    from serving.plex.poller import HistoryPoller
    from serving.plex.state import PlexStateError, load_state, state_path

    home = _home(ctx)
    server = _server(timeout)
    path = state_path(home)
    try:
        with _store(home) as store:
            index = MovieIndex.from_store(store, load_state(path).movie_keys)
    except (PlexStateError, GraphStoreError) as exc:
        raise _fail(str(exc)) from None
    sink = InMemoryFeedbackSink()
    poller = HistoryPoller(server, sink, path, index=index)
    printed = 0

    def flush() -> None:
        nonlocal printed
        for event in sink.events[printed:]:
            out.print_json(json.dumps(event.model_dump(mode="json")))
        printed = len(sink)

    if once:
        try:
            poller.poll_once()
        except PlexError as exc:
            raise _fail(str(exc)) from None
        flush()
        return
    stop = threading.Event()
    try:
        while not stop.is_set():
            poller.run(interval, stop, max_polls=1)
            flush()
            stop.wait(interval)
    except KeyboardInterrupt:
        stop.set()
