"""The service's precomputed user states: a features.precompute.Precomputer for the policy
pool's ranker, and the lifespan's background task that runs it between requests.

The ranker exists once a registry policy has loaded (the pool loads it with the first version),
so the Precomputer is made on first need and again if the pool's ranker is replaced. Writers in
the service (serving.feedback.graph_history, for feedback and the web's card actions) report the
users they changed through ``changed``; the task recomputes those first, then continues the
warm-up. With ``actor_source`` (the pool's actors served now) the users' actions are computed
ahead too (features.precompute), so a known user's request runs neither the features nor the
actor.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fastapi.concurrency import run_in_threadpool

from features.graph.store import GraphStore
from features.precompute import Precomputer
from features.ranker import Actor, Ranker
from serving import heap
from serving.settings import Settings

log = logging.getLogger(__name__)


def saved_states_file(settings: Settings) -> Path | None:
    """Where the warm-up is saved: under the home's cache folder, named for the trained world's
    files (names, sizes, times) and the candidate settings, so that a retrained world or other
    settings never load another's states. None without a trained world."""
    world = settings.home_dir().world_dir
    if not world.is_dir():
        return None
    h = hashlib.blake2b(digest_size=8)
    for path in sorted(p for p in world.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(world)}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(f"{settings.max_candidates}:{settings.candidate_hops}".encode())
    return settings.home_dir().root / "cache" / f"user-states-{h.hexdigest()}.npz"


class Precompute:
    """The service's Precomputer over ``store`` for the ranker ``ranker_source`` gives (None
    while no policy is loaded); ``saved``: where its warm-up is saved and loaded from;
    ``actor_source``: the actors whose actions are computed ahead (none: only the states)."""

    def __init__(
        self,
        store: GraphStore,
        ranker_source: Callable[[], Ranker | None],
        limit: int,
        saved: Path | None = None,
        actor_source: Callable[[], Sequence[Actor]] | None = None,
    ) -> None:
        self.store = store
        self.ranker_source = ranker_source
        self.actor_source = actor_source
        self.limit = limit
        self.saved = saved
        self._current: Precomputer | None = None
        self._lock = threading.Lock()  # feedback reports changes from the threadpool

    def current(self) -> Precomputer | None:
        ranker = self.ranker_source()
        if ranker is None:
            return None
        with self._lock:
            now = self._current
            if now is None or now.ranker is not ranker:
                now = self._current = Precomputer(
                    ranker,
                    self.store,
                    limit=self.limit,
                    saved=self.saved,
                    actors=self.actor_source,
                )
            return now

    def changed(self, users: Iterable[str]) -> None:
        """These users' histories changed in the graph: recompute them in the background."""
        now = self.current()
        if now is not None:
            now.changed(users)

    def status(self) -> dict[str, int | bool] | None:
        now = self.current()
        return now.status() if now is not None else None


async def precompute_loop(
    precompute: Precompute, every: float, budget: float, freeze_warm_up: bool = False
) -> None:
    """In the background, never in front of a request: while there is work, a slice of about
    ``budget`` seconds in the threadpool, then the loop is free again; idle, a check every
    ``every`` seconds. With ``freeze_warm_up``, what the first warm-up built is frozen when
    it is done (serving.heap)."""
    frozen = not freeze_warm_up
    while True:
        work = precompute.current()
        if work is None or work.idle:
            if work is not None and not frozen:
                frozen = True
                heap.freeze()
            await asyncio.sleep(every)
            continue
        try:
            await run_in_threadpool(work.step, budget)
        except Exception:
            log.exception("precomputing user states failed; will retry")
            await asyncio.sleep(every)
        await asyncio.sleep(0)
