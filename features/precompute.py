"""Known users' (state, candidates) computed ahead of their requests, and again when they change.

A ``Precomputer`` fills a features.ranker.Ranker's per-user cache in the background: first
every known user of the store (up to the cache's size, the warm-up), then, whenever a writer
says a user's history changed (``changed``), that user again, before their next request. So a
known user's request is a cache hit; cold and unknown users take the request path as before.
With ``actors`` (the policies being served), each user's action under each of them is computed
too (``Ranker.warm_actions``), so the request does not run the actor either; when the served
actors change (a new version), every known user's action is computed again for the new ones,
after any reported change and the warm-up.

Freshness does not depend on this class: the Ranker serves an entry only while the store's
revision is unchanged or the user's history still has the digest it was computed from (see
features.ranker). A change nobody reported (a write by another process) is therefore never
served stale; that user's entry is recomputed on their request instead, as without precomputing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from features.graph.schema import VertexKind
from features.graph.store import GraphStore
from features.precompute_file import load_entries, save_entries
from features.ranker import Actor, Ranker

log = logging.getLogger(__name__)


class Precomputer:
    """Keeps ``ranker``'s cache current for ``store``'s known users (module doc).

    ``limit`` caps the warm-up (default: the ranker's cache size; more would only evict).
    ``step`` does the work in slices so that a caller (serving.precompute's background task)
    can interleave it with requests. With ``saved`` (a file named for the ranking bundle), a
    warm-up saved there is loaded first, so that users are only checked, not computed; the
    warm-up is saved there when it ends, if it computed anything (features.precompute_file).
    ``actors`` gives the actors served now (module doc; the saved file holds no actions).
    """

    def __init__(
        self,
        ranker: Ranker,
        store: GraphStore,
        *,
        limit: int | None = None,
        saved: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        actors: Callable[[], Sequence[Actor]] | None = None,
    ) -> None:
        self.ranker = ranker
        self.actors = actors
        self.store = store
        self.limit = ranker.cache_size if limit is None else min(limit, ranker.cache_size)
        self.clock = clock
        self.saved = saved
        self._loaded = 0  # entries adopted from ``saved``
        self._computed_at_start = 0
        self._lock = threading.Lock()
        self._changed: dict[str, None] = {}  # an ordered set: first reported, first redone
        self._warmup: list[str] | None = None  # None until the known users are listed
        self._warmup_users: list[str] = []  # all of them (as ``_warmup``: popped from the end)
        self.known = 0  # users the warm-up covers
        self.warmed = 0  # of them, done
        self.recomputed = 0  # entries recomputed after a reported change
        self._acted: tuple[Actor, ...] = ()  # the actors the warm-up's actions are for
        self._reacting: list[str] = []  # users whose actions a new actor still needs

    def changed(self, users: Iterable[str]) -> None:
        """These users' histories changed (a writer says so): redo them before anything else."""
        with self._lock:
            for user in users:
                self._changed[user] = None

    @property
    def idle(self) -> bool:
        """Nothing to do now (warm-up done, no reported change waiting, the served actors'
        actions computed)."""
        with self._lock:
            warm = self._warmup is not None and not self._warmup
            return warm and not self._changed and not self._reacting and self._same_actors()

    def _served(self) -> tuple[Actor, ...]:
        return tuple(self.actors()) if self.actors is not None else ()

    def _same_actors(self, served: tuple[Actor, ...] | None = None) -> bool:
        """Are the actors served now (or ``served``) those the actions were computed for?"""
        now = self._served() if served is None else served
        return len(now) == len(self._acted) and all(
            a is b for a, b in zip(now, self._acted, strict=True)
        )

    def _known_users(self) -> list[str]:
        keys = self.store.vertex_frame(VertexKind.USER)["key"].astype(str).tolist()
        return list(reversed(keys[: self.limit]))  # popped from the end: key order

    def _next(self) -> tuple[str, bool] | None:
        with self._lock:
            if self._changed:
                user = next(iter(self._changed))
                del self._changed[user]
                return user, True
            if self._warmup:
                return self._warmup.pop(), False
            if self._reacting:
                return self._reacting.pop(), True
        return None

    def step(self, budget_seconds: float = 0.05) -> int:
        """Redo reported users, then continue the warm-up, for about ``budget_seconds`` (at
        least one user). The number of users handled."""
        if self._warmup is None:
            if self.saved is not None:
                self._loaded = load_entries(self.ranker, self.saved)
            self._computed_at_start = self.ranker.stats.computed
            users = self._known_users()
            with self._lock:
                self._warmup_users = list(users)
                self._warmup = users
                self.known = len(users)
                self._acted = self._served()
            log.info("precomputing %d known users' states and candidates", len(users))
        acts = self._served()
        with self._lock:
            if not self._warmup and not self._same_actors(acts):
                # the warm-up is done and other actors are served than it started with (a new
                # version, or the first one loaded during it): every user's action for them
                self._reacting = list(self._warmup_users)
                self._acted = acts
        deadline = self.clock() + budget_seconds
        done = 0
        while True:
            item = self._next()
            if item is None:
                break
            user, reported = item
            computed = self.ranker.refresh(self.store, user)
            if acts:
                self.ranker.warm_actions(user, acts)
            finished = False
            with self._lock:
                if reported:
                    self.recomputed += computed
                else:
                    self.warmed += 1
                    finished = not self._warmup
            if not reported and finished:
                self._finish_warmup()
            done += 1
            if self.clock() >= deadline:
                break
        return done

    def _finish_warmup(self) -> None:
        computed = self.ranker.stats.computed - self._computed_at_start
        log.info("precomputed %d known users (%d computed)", self.warmed, computed)
        if self.saved is not None and (computed or not self._loaded):
            try:
                save_entries(self.ranker, self.saved)
            except OSError as exc:  # a read-only home: the next start warms up again
                log.warning("precomputed states not saved to %s: %s", self.saved, exc)

    def status(self) -> dict[str, int | bool]:
        """Progress, for /readyz: users to warm, warmed, changes waiting, recomputed."""
        with self._lock:
            return {
                "known_users": self.known,
                "warmed": self.warmed,
                "warm": self._warmup is not None and not self._warmup,
                "loaded": self._loaded,
                "changes_waiting": len(self._changed),
                "recomputed": self.recomputed,
            }
