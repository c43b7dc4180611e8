"""Ranker: a real user's slate from a graph store, as the simulator ranks a simulated one.

One pass through features for a request: the user's history (features.history) gives the
state (features.state) and the candidates (features.candidates), both cached per user; the
caller's actor (a function state -> action, agent.actor for a trained policy) gives the
action; ``features.ranking.rank`` orders the candidates by base + e . a_e + f . a_f (f the
bundle's slate features, ``features.slate_features``), base being the
bundle's retriever's standardised score (``features.candidates.base_scores``), as in the
simulator. Everything a policy version needs beyond its actor comes from one RankingBundle, so
every version of one world shares a Ranker (the hop precomputation and the cache are costly).

The per-user cache and its freshness: a user's (state, candidates) depend on the bundle and on
that user's history alone (``GraphStore.user_movies``), so an entry keeps a digest of the
history it was computed from and the store's ``revision`` read just before. It is served as is
while the revision is the same object (nothing in the graph changed); after any change, the
user's history is read again and the entry served only if its digest is unchanged, else
recomputed. So with a store that has a revision (the embedded one) an entry is never staler
than the store: no change to the user's history is ever missed. A store without one (None) is
trusted for ``cache_seconds`` after the entry was computed or last checked, then checked.
``refresh`` is the same check made ahead of a request (features.precompute). An entry also
keeps the action of each actor that ranked from it (the actor is a pure function of the
state): a user's repeat requests cost the ranking alone, not another forward pass.

On catalogues of ``PARALLEL_MIN_MOVIES`` or more, a computation's two independent halves run
side by side: the retriever's scores over every movie and their top (features.blend: mostly
vector passes, which release the GIL) on a helper thread while this one builds the state and
the graph candidates; the candidates then join both. The same values either way (each half
writes its own entries of the history's derived values).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from features.bundle import RankingBundle
from features.candidates import DEFAULT_CANDIDATE_HOPS, CandidateGenerator, base_scores
from features.graph.store import GraphStore, UnknownVertexError
from features.history import HistoryReader, history_digest, with_rating
from features.implied_action import implied_action
from features.ranking import Slate, candidate_scores, rank_scores, residual_weight
from features.slate_features import SlateFeatures
from features.state import StateBuilder, UserHistory

log = logging.getLogger(__name__)

Actor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


class Prepared(NamedTuple):
    """What a user's request needs before the actor: state, candidate rows, and the
    retriever's base score per candidate (None without a retriever)."""

    state: npt.NDArray[np.float32]
    candidates: npt.NDArray[np.int64]
    base: npt.NDArray[np.float64] | None
    extras: npt.NDArray[np.float64] | None = None  # slate features (features.slate_features)
    residual: float = 1.0  # the correction's share for this history (ranking.residual_weight)


@dataclass(frozen=True)
class RankedSlate:
    """A slate for one user with the state and action behind it (what the service logs)."""

    state: npt.NDArray[np.float32]
    action: npt.NDArray[np.float32]
    slate: Slate | None  # None when the user has seen the whole catalogue


_UNCHECKED = object()  # the token of an adopted entry: never a store's revision
_ACTORS = 2  # actions kept per entry: an A/B split serves a user one actor, interleaving two
# Catalogues of at least this many movies compute a user's retriever scores on a helper thread
# beside the state (module doc). At 500K movies it took a first request's wall p50 from ~24 to
# ~15 ms (experiments/bench/scale.py); at 100K a computation is ~2 ms, where a hand-off's cost
# and the second core, busy with other requests, are better left alone.
PARALLEL_MIN_MOVIES = 200_000


@functools.lru_cache(maxsize=1)
def _helper() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that compute retriever scores beside a request's state (created on first
    use; two, as the machines this serves on have two cores)."""
    return concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="marquee-retriever")


# A forked child has the pool but not its threads (work submitted there would never run): it
# makes its own on first use.
os.register_at_fork(after_in_child=_helper.cache_clear)


@dataclass(frozen=True)
class _Cached:
    token: object  # the store's revision read just before the history (None: cannot tell)
    made: float  # clock time of that read
    digest: bytes  # features.history.history_digest of the history it was computed from
    value: Prepared | None
    # (actor, actor(value.state)), newest first: an actor is a pure function of the state, so
    # a cached state's action is computed once per actor (the entry's list, under the lock)
    actions: list[tuple[Actor, npt.NDArray[np.float32]]] = field(
        default_factory=list, compare=False
    )


@dataclass
class CacheStats:
    """What the per-user cache did: served without reading the store, served after checking
    the user's history was unchanged, computed (first time, or the history changed)."""

    hits: int = 0
    checked: int = 0
    computed: int = 0


def explore(
    action: npt.NDArray[np.float32], sd: float, rng: np.random.Generator | None
) -> npt.NDArray[np.float32]:
    """``action`` plus N(0, sd^2) noise per dimension, clipped to the actor's [-1, 1] (as
    DDPG explores while it trains): the action a slate is ranked by and logged with. An online
    learner's critic needs logged actions that vary apart from the state; a deterministic
    actor's only vary with it, so the critic cannot tell which way a better action lies. The
    slate's propensities are conditional on the noisy action, which keeps off-policy
    estimates unbiased (the noise is the logging policy's own draw). ``sd`` 0 or no ``rng``:
    ``action`` itself."""
    if sd <= 0 or rng is None:
        return action
    noisy = action + sd * rng.standard_normal(action.shape)
    return np.clip(noisy, -1.0, 1.0).astype(np.float32)


class Ranker:
    """History, state, candidates and ranking for one bundle (module doc).

    The per-user (state, candidates) cache holds ``cache_size`` users (least recently used
    leave first); its freshness rules are in the module doc. ``clock`` is for tests.
    """

    def __init__(
        self,
        bundle: RankingBundle,
        *,
        max_candidates: int = 200,
        hops: int = DEFAULT_CANDIDATE_HOPS,
        cache_size: int = 10_000,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        catalog = bundle.catalog
        self.bundle = bundle
        self.vectors = bundle.embeddings.vectors
        self.histories = HistoryReader(catalog)
        self.builder = StateBuilder(
            catalog, bundle.embeddings, pool_hops=bundle.pool_hops, tables=bundle.pool_tables
        )
        self.retriever = bundle.retriever
        self.candidates = CandidateGenerator(
            catalog,
            max_candidates=min(max_candidates, catalog.n_movies),
            hops=hops,
            retriever=self.retriever,
        )
        # quality from the ratings the store holds (the simulator's from its training users');
        # only their movie and rating columns: the user keys are never read here
        self.slate_features = (
            SlateFeatures.fit(
                catalog,
                catalog.rating_columns("movie", "rating"),
                bundle.slate_features,
                bundle.base_weight * bundle.slate_feature_reach,
            )
            if bundle.slate_features
            else None
        )
        self.keys = self.histories.keys
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.stats = CacheStats()
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def observation_size(self) -> int:
        return self.builder.observation_size

    @property
    def action_size(self) -> int:
        extra = 0 if self.slate_features is None else self.slate_features.dim
        return int(self.vectors.shape[1]) + extra

    def prepare(self, store: GraphStore, user: str) -> Prepared | None:
        """(state, candidates, base) for a user with usable history, else None (cached; none
        depends on the policy, so every version shares them)."""
        entry = self._entry(store, user)
        return entry.value if entry is not None else None

    def _entry(self, store: GraphStore, user: str) -> _Cached | None:
        """The user's current cache entry (None for an unknown user): ``prepare``'s."""
        token = store.revision()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(user)
            if hit is not None and self._trusted(hit, token, now):
                self._cache.move_to_end(user)
                self.stats.hits += 1
                return hit
        return self._load(store, user, token, now, hit)[0]

    def refresh(self, store: GraphStore, user: str) -> bool:
        """Make the user's entry current now, ahead of their request: checked against their
        history, recomputed if it changed or was missing. True when it was computed."""
        token = store.revision()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(user)
        if hit is not None and token is not None and hit.token is token:
            return False
        return self._load(store, user, token, now, hit)[1]

    def warm_actions(self, user: str, actors: Sequence[Actor]) -> int:
        """Compute each of ``actors``' action for the user's cached entry now, ahead of their
        request (features.precompute), so that the request costs the ranking alone: the same
        arrays ``rank`` would compute and keep (``_act``). At most the ``_ACTORS`` an entry
        keeps; nothing for a user without an entry or without usable history. The number of
        actions computed."""
        with self._lock:
            entry = self._cache.get(user)
        if entry is None or entry.value is None:
            return 0
        computed = 0
        for act in actors[:_ACTORS]:
            with self._lock:
                kept = any(fn is act for fn, _ in entry.actions)
            if not kept:
                self._act(entry, act)
                computed += 1
        return computed

    def entries(self) -> list[tuple[str, bytes, Prepared | None]]:
        """Every cached (user, history digest, value), least recently used first."""
        with self._lock:
            return [(user, e.digest, e.value) for user, e in self._cache.items()]

    def adopt(self, user: str, digest: bytes, value: Prepared | None) -> None:
        """Take an entry computed elsewhere (a saved warm-up): it is served only after the
        user's history is read and found to have ``digest``, as after a graph change."""
        with self._lock:
            if user in self._cache:
                return
            self._cache[user] = _Cached(_UNCHECKED, float("-inf"), digest, value)
            self._cache.move_to_end(user, last=False)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def cached(self, user: str) -> bool:
        """Is there an entry for the user (fresh or not)?"""
        with self._lock:
            return user in self._cache

    def _trusted(self, hit: _Cached, token: object, now: float) -> bool:
        if token is None:  # (an adopted entry's token is never None: it is checked first)
            return hit.token is None and now - hit.made <= self.cache_seconds
        return hit.token is token

    def _load(
        self, store: GraphStore, user: str, token: object, now: float, hit: _Cached | None
    ) -> tuple[_Cached | None, bool]:
        """Read the user's history (after ``token`` was read), reuse ``hit`` if it was computed
        from the same history, else compute; store the entry. (entry, computed); the entry is
        None for an unknown user."""
        try:
            found = store.user_movies(user)
        except UnknownVertexError:
            # An unknown user (cold start) is not cached: nothing to reuse, and a stream of
            # new names would push known users' entries out.
            with self._lock:
                self._cache.pop(user, None)
            return None, False
        digest = history_digest(found)
        computed = hit is None or hit.digest != digest
        with self._lock:
            if hit is not None and not computed:  # the same state: its actions still hold
                entry = _Cached(token, now, digest, hit.value, hit.actions)
            else:
                entry = None
        if entry is None:
            entry = _Cached(token, now, digest, self._compute(self.histories.from_movies(found)))
        with self._lock:
            if computed:
                self.stats.computed += 1
            else:
                self.stats.checked += 1
            self._cache[user] = entry
            self._cache.move_to_end(user)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry, computed

    def _act(self, entry: _Cached, act: Actor) -> npt.NDArray[np.float32]:
        """``act`` of the entry's state, computed once per (entry's state, actor): the same
        array every time (read-only, as it is shared by the requests that get it)."""
        assert entry.value is not None
        with self._lock:
            for fn, action in entry.actions:
                if fn is act:
                    return action
        action = act(entry.value.state)
        action.flags.writeable = False
        with self._lock:
            entry.actions.insert(0, (act, action))
            del entry.actions[_ACTORS:]
        return action

    def _compute(self, history: UserHistory) -> Prepared | None:
        if not history.items:
            return None
        pending = None
        if self.candidates.n_retrieved and self.bundle.catalog.n_movies >= PARALLEL_MIN_MOVIES:
            pending = _helper().submit(self.candidates.retrieved, history)
        state = self.builder.build(history)
        cands = self.candidates.generate(history, pending)
        features = self.slate_features
        return Prepared(
            state,
            cands,
            base_scores(self.retriever, history, cands, self.bundle.base_weight),
            None if features is None else features.compute(history, cands),
            residual_weight(len(history.items), self.bundle.residual_ramp),
        )

    def rank(
        self,
        store: GraphStore,
        user: str,
        act: Actor,
        k: int,
        temperature: float = 0.0,
        rng: np.random.Generator | None = None,
        action_noise: float = 0.0,
        implied_sd: float = 0.0,
    ) -> RankedSlate | None:
        """The user's top ``k`` by ``act``'s action (a Plackett-Luce sample when temperature
        > 0), or None for a user without usable history (a cold start). ``temperature`` is in
        units of the standardised retriever base: the base carries the bundle's weight w, so
        the softmax divides by temperature x w and a given temperature explores as much
        whatever w is. ``action_noise`` > 0 (with ``rng``) ranks by the action plus Gaussian
        noise of that sd, clipped to [-1, 1], and returns that action (``explore``).
        ``implied_sd`` > 0 with a sampled slate returns, as the action to log, the one the
        draw implies (``features.implied_action``, prior sd ``implied_sd``); the slate is the
        same."""
        entry = self._entry(store, user)
        if entry is None or entry.value is None:
            return None
        state, cands, base, extras, residual = entry.value
        action = explore(self._act(entry, act), action_noise, rng)
        if cands.shape[0] == 0:
            return RankedSlate(state, action, None)
        scale = self.bundle.base_weight if base is not None else 1.0
        # the candidates' embedding rows, read from the file when mapped (features.npz
        # .RowReader: the same bytes, so the same scores), ranked by position, mapped back
        rows = self.builder.vector_rows.take(cands)
        at = np.arange(cands.shape[0], dtype=np.int64)
        tau = temperature * scale
        at, scores = candidate_scores(action, at, rows, base, extras, residual)
        slate = rank_scores(at, scores, k, tau, rng)
        logged = action
        if implied_sd > 0 and tau > 0:
            x = np.asarray(rows) if extras is None else np.hstack([rows, extras])
            logged = implied_action(action, x, scores, slate.indices, tau, residual, implied_sd)
        slate = dataclasses.replace(slate, indices=cands[slate.indices])
        return RankedSlate(state, logged, slate)

    def next_state(
        self, store: GraphStore, user: str, movie: str | None, rating: float | None = None
    ) -> npt.NDArray[np.float32]:
        """The state after ``movie`` joins the user's current history with ``rating`` (as the
        simulator adds a chosen movie), or is only marked seen when ``rating`` is None."""
        history = self.histories.read(store, user)
        if history is None:
            history = self.builder.new_history()
        row = self.histories.row(movie) if movie is not None else None
        if row is not None and rating is not None:
            history = with_rating(history, row, rating)
        elif row is not None and not history.seen[row]:
            history.mark_seen(row)
        return self.builder.build(history)
