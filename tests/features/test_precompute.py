"""Precomputed user states (features.precompute) and the Ranker cache's freshness bound
(features.ranker): with a store that has a revision, a served (state, candidates) is never
staler than the store, even for writes nobody reported; without a revision, at most
``cache_seconds`` old."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd

from features.bundle import RankingBundle
from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.precompute import Precomputer
from features.ranker import Prepared, Ranker
from tests.features.conftest import MOVIES, make_tiny_batch

USERS = ["ann", "bob", "cy"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store() -> LocalGraphStore:
    store = LocalGraphStore()
    store.upsert(make_tiny_batch())
    return store


def _bundle(store: LocalGraphStore, residual_ramp: float = 0.0) -> RankingBundle:
    catalog = Catalog.from_store(store)
    return RankingBundle(catalog, ItemEmbeddings.fit(catalog, dim=4), residual_ramp=residual_ramp)


def _write(store: LocalGraphStore, user: str, movie: str, kind: EdgeKind, t: int) -> None:
    """One feedback-like write: a rating, a watch or a dismissal of ``movie`` by ``user``."""
    batch = GraphBatch()
    row: dict[str, object] = {"src": user, "dst": movie, "timestamp": t}
    if kind is EdgeKind.RATED:
        row["rating"] = float(1 + t % 5)
    if kind is EdgeKind.WATCHED:
        row["completion"] = 50.0
    batch.add_edges(kind, pd.DataFrame([row]))
    store.upsert(batch)


def _same(got: Prepared | None, fresh: Prepared | None) -> bool:
    if got is None or fresh is None:
        return got is None and fresh is None
    base_same = (got.base is None and fresh.base is None) or (
        got.base is not None and fresh.base is not None and np.array_equal(got.base, fresh.base)
    )
    return (
        np.array_equal(got.state, fresh.state)
        and np.array_equal(got.candidates, fresh.candidates)
        and base_same
        and got.residual == fresh.residual
    )


def test_a_served_state_is_never_staler_than_the_store() -> None:
    """200 random writes, one in three reported to the precomputer, the rest not (as a write
    by another process): after each, every user's served entry equals one computed afresh
    from the store, and most requests are still served from the cache."""
    store = _store()
    bundle = _bundle(store)
    ranker = Ranker(bundle)
    pre = Precomputer(ranker, store)
    while not pre.idle:
        pre.step()
    assert pre.status()["warmed"] == len(USERS) and all(ranker.cached(u) for u in USERS)
    rng = random.Random(0)
    kinds = [EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED]
    movies = [m[0] for m in MOVIES]
    for t in range(1, 201):
        user = rng.choice(USERS)
        _write(store, user, rng.choice(movies), rng.choice(kinds), 1000 + t)
        if t % 3 == 0:
            pre.changed([user])
            pre.step()
        for u in USERS:
            fresh = Ranker(bundle).prepare(store, u)  # an empty cache: the store as it is
            assert _same(ranker.prepare(store, u), fresh), (t, u)
    stats = ranker.stats
    # the check is not vacuous: entries were reused (checked unchanged or hit) and recomputed
    assert stats.hits > 0 and stats.checked > 0 and stats.computed > len(USERS)


def test_a_reported_change_is_recomputed_before_the_request() -> None:
    store = _store()
    ranker = Ranker(_bundle(store))
    pre = Precomputer(ranker, store)
    while not pre.idle:
        pre.step()
    before = ranker.prepare(store, "bob")
    _write(store, "bob", "3", EdgeKind.RATED, 5000)
    pre.changed(["bob"])
    assert not pre.idle
    computed = ranker.stats.computed
    pre.step()
    assert pre.idle and pre.status()["recomputed"] == 1
    assert ranker.stats.computed == computed + 1
    hits = ranker.stats.hits
    got = ranker.prepare(store, "bob")
    assert ranker.stats.hits == hits + 1 and ranker.stats.computed == computed + 1  # a hit
    assert _same(got, Ranker(ranker.bundle).prepare(store, "bob"))
    assert not _same(got, before)


def test_unchanged_users_are_not_recomputed_after_another_users_write() -> None:
    """A write to ann changes the store's revision; bob's entry is checked (his history read
    and found unchanged), not recomputed."""
    store = _store()
    ranker = Ranker(_bundle(store))
    pre = Precomputer(ranker, store)
    while not pre.idle:
        pre.step()
    computed = ranker.stats.computed
    _write(store, "ann", "9", EdgeKind.RATED, 6000)
    ranker.prepare(store, "bob")
    assert ranker.stats.computed == computed and ranker.stats.checked == 1


class RevisionlessStore(LocalGraphStore):
    """A store that cannot tell its revision (as the ArangoDB store)."""

    def revision(self) -> object | None:
        return None


def test_without_a_revision_a_state_is_at_most_cache_seconds_old() -> None:
    store = RevisionlessStore()
    store.upsert(make_tiny_batch())
    clock = Clock()
    ranker = Ranker(_bundle(store), cache_seconds=30.0, clock=clock)
    old = ranker.prepare(store, "cy")
    _write(store, "cy", "2", EdgeKind.RATED, 7000)  # at clock 1000: the entry's time
    fresh = Ranker(ranker.bundle).prepare(store, "cy")
    assert not _same(old, fresh)
    for now in (1000.0, 1015.0, 1030.0):  # within the bound the entry may be served
        clock.now = now
        assert _same(ranker.prepare(store, "cy"), old)
    clock.now = 1030.001  # past it, never
    assert _same(ranker.prepare(store, "cy"), fresh)


def test_unknown_users_are_not_cached_and_a_new_user_is_seen_at_once() -> None:
    store = _store()
    ranker = Ranker(_bundle(store))
    assert ranker.prepare(store, "dee") is None and not ranker.cached("dee")
    batch = GraphBatch()
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["dee"], "name": ["Dee"]}))
    store.upsert(batch)
    assert ranker.prepare(store, "dee") is None  # known now, but no history: cold start
    _write(store, "dee", "1", EdgeKind.RATED, 8000)
    got = ranker.prepare(store, "dee")
    assert got is not None and _same(got, Ranker(ranker.bundle).prepare(store, "dee"))


def test_the_warm_up_is_capped_by_the_cache() -> None:
    store = _store()
    ranker = Ranker(_bundle(store), cache_size=2)
    pre = Precomputer(ranker, store)
    while not pre.idle:
        pre.step()
    assert pre.status()["known_users"] == 2
    assert [ranker.cached(u) for u in USERS] == [True, True, False]


def test_a_saved_warm_up_is_loaded_and_checked_never_served_stale(tmp_path: Path) -> None:
    """A restart loads the saved warm-up: unchanged users are only checked (not computed), and
    a user whose history changed after the save is recomputed, never served from the file."""
    store = _store()
    bundle = _bundle(store)
    saved = tmp_path / "cache" / "states.npz"
    first = Precomputer(Ranker(bundle), store, saved=saved)
    while not first.idle:
        first.step()
    assert saved.exists()
    _write(store, "ann", "8", EdgeKind.RATED, 9000)  # after the save
    ranker = Ranker(bundle)
    again = Precomputer(ranker, store, saved=saved)
    while not again.idle:
        again.step()
    assert again.status()["loaded"] == len(USERS)
    assert ranker.stats.computed == 1 and ranker.stats.checked == len(USERS) - 1  # ann only
    for u in USERS:
        assert _same(ranker.prepare(store, u), Ranker(bundle).prepare(store, u)), u


def test_an_unreadable_saved_file_is_ignored(tmp_path: Path) -> None:
    store = _store()
    saved = tmp_path / "states.npz"
    saved.write_bytes(b"not a file of states")
    ranker = Ranker(_bundle(store))
    pre = Precomputer(ranker, store, saved=saved)
    while not pre.idle:
        pre.step()
    assert pre.status()["loaded"] == 0 and ranker.stats.computed == len(USERS)


def test_saved_residual_weights_come_back_and_a_file_without_them_is_not_used(
    tmp_path: Path,
) -> None:
    """Each user's share of the correction is saved with their state; a file saved before
    (no weights) is not used by a ranker whose bundle ramps the correction."""
    store = _store()
    bundle = _bundle(store, residual_ramp=2.0)
    saved = tmp_path / "states.npz"
    first = Precomputer(Ranker(bundle), store, saved=saved)
    while not first.idle:
        first.step()
    ranker = Ranker(bundle)
    again = Precomputer(ranker, store, saved=saved)
    while not again.idle:
        again.step()
    assert again.status()["loaded"] == len(USERS) and ranker.stats.computed == 0
    weights = {u: ranker.prepare(store, u) for u in USERS}
    assert any(w is not None and 0.0 < w.residual < 1.0 for w in weights.values())
    for u in USERS:
        assert _same(weights[u], Ranker(bundle).prepare(store, u)), u
    with np.load(saved) as z:
        old = {k: z[k] for k in z.files if k != "residuals"}
    np.savez(saved, **old)
    fresh = Ranker(bundle)
    later = Precomputer(fresh, store, saved=saved)
    while not later.idle:
        later.step()
    assert later.status()["loaded"] == 0 and fresh.stats.computed == len(USERS)


class CountingActor:
    """A deterministic actor (a fixed linear map of the state) that counts its calls."""

    def __init__(self, ranker: Ranker, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(ranker.observation_size, ranker.action_size)).astype(np.float32)
        self.calls = 0

    def __call__(self, state: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.tanh(state @ self.w).astype(np.float32)


def test_actions_are_computed_ahead_and_the_request_ranks_the_same() -> None:
    """With the served actors given, the warm-up computes every user's action, so their
    requests run no actor, and their slates equal those of a ranker that computed the action
    at the request; a newly served actor gets every user's action computed again."""
    store = _store()
    served: list[CountingActor] = []
    ranker = Ranker(_bundle(store))
    first = CountingActor(ranker, 0)
    served.append(first)
    pre = Precomputer(ranker, store, actors=lambda: served)
    while not pre.idle:
        pre.step()
    assert first.calls == len(USERS)
    plain = Ranker(_bundle(store))
    for user in USERS:
        got = ranker.rank(store, user, first, 3)
        want = plain.rank(store, user, first, 3)
        assert got is not None and want is not None
        assert np.array_equal(got.action, want.action)
        assert got.slate is not None and want.slate is not None
        assert np.array_equal(got.slate.indices, want.slate.indices)
    assert first.calls == 2 * len(USERS)  # only ``plain`` ran it at the requests
    second = CountingActor(ranker, 1)
    served[:] = [second]
    assert not pre.idle
    while not pre.idle:
        pre.step()
    assert second.calls == len(USERS)
    for user in USERS:
        ranker.rank(store, user, second, 3)
    assert second.calls == len(USERS)
