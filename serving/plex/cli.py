"""``marquee plex ...``: sync a Plex server into the graph, push recommendations, poll history.

Settings come from PLEX_URL and PLEX_TOKEN; the home folder (graph, state) from ``ctx.obj``;
push and poll use the service's recommenders and Redis (MARQUEE_* settings, serving.settings).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from marquee.home import Home, resolve_home
from serving.plex import jobs

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


def _store(home: Home) -> AbstractContextManager[GraphStore]:
    return jobs.open_store(home)


def _say(message: str) -> None:
    out.print(message, highlight=False)


def _warn(message: str) -> None:
    err.print(escape(message), highlight=False, soft_wrap=True)


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
        Path | None,
        typer.Option(
            "--from",
            help='Push this JSON file instead of asking the recommender: {"<plex account name>": '
            '[{"movie": "<graph key>", "score": 0.93, "reason": "..."}]}.',
        ),
    ] = None,
    mode: Annotated[str, typer.Option(help="'collection' or 'playlist'.")] = "collection",
    section: Annotated[str | None, typer.Option(help="Movie library for collections.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Movies per list.")] = 20,
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            min=1,
            max=1000,
            help="Recommendations asked per account (default: --limit); only movies Plex "
            "holds go into the list, the rest into --placeholders.",
        ),
    ] = None,
    placeholders: Annotated[
        Path | None,
        typer.Option(
            help="Also keep a 'Recommendations' library of placeholders in this folder for "
            "recommended movies Plex does not hold (needs ffmpeg; Plex must see the folder)."
        ),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(min=0.01, help="Refresh every this many seconds until Ctrl-C or SIGTERM."),
    ] = None,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="With --every: stop after this many refreshes.")
    ] = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Refresh "Recommended for <user>" in Plex for every Plex account.

    The recommendations come from the service's recommender (the A/B arm's registered policy,
    popularity until one is registered), explained as the service explains them; each slate is
    logged so that watching a pushed movie teaches the policy. --from pushes a file instead.
    """
    from serving.plex.push import RecommendationFileError, load_recommendations
    from serving.plex.state import PlexStateError, load_state, state_path
    from serving.wiring import ServiceConfigError, service_settings

    if mode not in ("collection", "playlist"):
        raise _fail(f"--mode must be 'collection' or 'playlist', not {mode!r}", code=2)
    if iterations is not None and every is None:
        raise _fail("--iterations needs --every", code=2)
    home = _home(ctx)
    try:
        if source is not None:
            load_recommendations(source)  # a bad file is a usage error before anything runs
        if not load_state(state_path(home)).movie_keys:
            raise _fail("no Plex movies known yet: run `marquee plex sync` first", code=2)
        settings = service_settings(home) if source is None else None
    except (RecommendationFileError, PlexStateError, ServiceConfigError) as exc:
        raise _fail(str(exc), code=2) from None
    server = _server(timeout)

    def one_round() -> None:
        jobs.push_round(
            home,
            server,
            source,
            settings,
            mode,
            section,
            limit,
            k,
            placeholders,
            say=_say,
            warn=_warn,
        )

    if every is None:
        try:
            one_round()
        except jobs.push_errors() as exc:
            raise _fail(str(exc)) from None
        return
    from serving.plex.schedule import repeat

    rounds = repeat(
        one_round,
        every,
        iterations=iterations,
        errors=jobs.push_errors(),
        on_error=lambda exc: err.print(f"push failed: {escape(str(exc))}", highlight=False),
    )
    out.print(f"stopped after {rounds} refreshes")


@plex_app.command("poll")
def poll(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(min=5.0, help="Seconds between polls.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many polls (default: never).")
    ] = None,
    print_events: Annotated[
        bool,
        typer.Option(
            "--print", help="Print new events as JSON lines instead of storing them in Redis."
        ),
    ] = False,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Poll watch history (for servers without Plex Pass webhooks) into the service's feedback
    store: the Redis at MARQUEE_REDIS_URL, else the home's embedded one. Each event is stored
    once, however often it is polled (and whether the webhook or a sync also saw it)."""
    from features.graph.store import GraphStoreError
    from serving.plex.ids import MovieIndex
    from serving.plex.state import PlexStateError, load_state, state_path
    from serving.wiring import ServiceConfigError, service_settings

    home = _home(ctx)
    try:
        settings = None if print_events else service_settings(home)
    except ServiceConfigError as exc:
        raise _fail(str(exc), code=2) from None
    server = _server(timeout)
    path = state_path(home)
    with ExitStack() as stack:
        try:
            store = stack.enter_context(_store(home))
            index = MovieIndex.from_store(store, load_state(path).movie_keys)
        except (PlexStateError, GraphStoreError) as exc:
            raise _fail(str(exc)) from None
        try:
            if settings is None:
                sink, report = jobs.printing_sink(out.print_json)
            else:
                sink, report = jobs.redis_sink(stack, settings, store, _say)
            jobs.poll_loop(
                server, sink, path, index, report, interval, 1 if once else iterations, _warn
            )
        except jobs.JobError as exc:
            raise _fail(str(exc)) from None
        except jobs.poll_errors() as exc:
            raise _fail(str(exc)) from None
