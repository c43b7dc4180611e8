"""Open the graph store a run should use: ArangoDB when a URL is configured, else the embedded one.

Configuration (environment): MARQUEE_ARANGO_URL selects ArangoDB; MARQUEE_ARANGO_DB (default
"marquee"), MARQUEE_ARANGO_USER (default "root") and MARQUEE_ARANGO_PASSWORD go with it. The
password is never logged. MARQUEE_GRAPH_HUB_CAP (a number; unset: exact) sets the embedded
store's k-hop hub cap (features.graph.local.LocalGraphStore); MARQUEE_GRAPH_THREADS (a number
>= 1; unset: min(2, CPUs)) how many threads share its large k-hop passes
(features.graph.hop_threads).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from features.graph.store import GraphStore
from marquee.home import Home

log = logging.getLogger(__name__)

ENV_URL = "MARQUEE_ARANGO_URL"
ENV_DB = "MARQUEE_ARANGO_DB"
ENV_USER = "MARQUEE_ARANGO_USER"
ENV_PASSWORD = "MARQUEE_ARANGO_PASSWORD"
ENV_HUB_CAP = "MARQUEE_GRAPH_HUB_CAP"
DEFAULT_DB = "marquee"


def open_store(
    home: Home, arango_url: str | None = None, *, follow_seconds: float | None = None
) -> GraphStore:
    """The ArangoDB store when ``arango_url`` or $MARQUEE_ARANGO_URL is set, else the embedded
    store in ``home.graph_dir`` (``follow_seconds``: how often it loads other processes' saves,
    as a long-running service needs; None: only before its own writes)."""
    url = arango_url or os.environ.get(ENV_URL) or ""
    if url:
        from features.graph.arango import ArangoGraphStore

        database = os.environ.get(ENV_DB) or DEFAULT_DB
        user = os.environ.get(ENV_USER) or "root"
        store = ArangoGraphStore.connect(
            url,
            database,
            username=user,
            password=os.environ.get(ENV_PASSWORD, ""),
            create=True,
        )
        log.info("graph store: ArangoDB database %r as user %r", database, user)
        return store
    from features.graph.hop_threads import configured_threads
    from features.graph.local import LocalGraphStore

    threads = configured_threads()
    cap = os.environ.get(ENV_HUB_CAP, "").strip()
    try:
        hub_cap = int(cap) if cap else None
    except ValueError:
        raise ValueError(f"{ENV_HUB_CAP} must be a whole number, got {cap!r}") from None
    log.info(
        "graph store: embedded, in %s (hub cap %s, k-hop threads %d)",
        home.graph_dir,
        hub_cap,
        threads,
    )
    return LocalGraphStore.open(  # type: ignore[no-any-return]
        home.graph_dir, hub_cap=hub_cap, follow_seconds=follow_seconds, threads=threads
    )


@contextmanager
def opened_store(home: Home) -> Iterator[GraphStore]:
    """``open_store`` for a ``with`` block: the home folder is created, the store closed after."""
    home.ensure()
    store = open_store(home)
    try:
        yield store
    finally:
        store.close()
