"""The API's Presenter (serving.presentation) shows every slate exactly as ``present`` reading
the store afresh would, across graph writes that change explanations, titles and who is known,
with caps small enough to evict, and for a store without a revision."""

from __future__ import annotations

import random

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.ab import Arm
from serving.presentation import Presenter, present
from serving.recommender import RecommendationResult, ScoredItem
from tests.features.conftest import MOVIES, make_tiny_batch

ARM = Arm(name="a", policy="champion", share=1.0)
USERS = ["ann", "bob", "cy", "dee"]  # dee: not in the graph until a write adds her
KEYS = [m[0] for m in MOVIES] + ["404"]  # 404: no such movie


def _slate(rng: random.Random) -> RecommendationResult:
    movies = rng.sample(KEYS, rng.randint(0, 5))
    items = [
        ScoredItem(
            movie=m,
            score=rng.random(),
            propensity=rng.random(),
            reason=rng.choice([None, "Popular."]),
        )
        for m in movies
    ]
    return RecommendationResult(items=items, policy_version="ddpg-v1")


def _write(store: LocalGraphStore, rng: random.Random, t: int) -> None:
    """A rating (new seeds change explanations), a retitled movie or a new user."""
    batch = GraphBatch()
    what = rng.randrange(3)
    if what == 0:
        row = {"src": rng.choice(USERS[:3]), "dst": rng.choice(KEYS[:-1]), "timestamp": 1000 + t}
        batch.add_edges(EdgeKind.RATED, pd.DataFrame([{**row, "rating": rng.choice([2.0, 5.0])}]))
    elif what == 1:
        key = rng.choice(KEYS[:-1])
        batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": [key], "title": [f"T{t}"]}))
    else:
        batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["dee"], "name": ["Dee"]}))
    store.upsert(batch)


def _check(store: LocalGraphStore, presenter: Presenter, seed: int) -> None:
    rng = random.Random(seed)
    for t in range(300):
        if t % 20 == 0:
            _write(store, rng, t)
        user = rng.choice(USERS)
        result = _slate(rng)
        known = store.vertex(VertexKind.USER, user) is not None
        expected = present(store, user, result, f"r{t}", ARM, known)
        assert presenter.present(user, result, f"r{t}", ARM) == expected, (t, user)
        kept = sum(len(e.paths) for e in presenter._users.values())
        assert presenter._paths == kept  # the count the cap is checked against
        assert len(presenter._users) <= 1 or kept <= presenter.max_paths


def test_slates_are_shown_as_a_fresh_read_of_the_store_would() -> None:
    store = LocalGraphStore()
    store.upsert(make_tiny_batch())
    presenter = Presenter(store, users=3, paths=8, movies=6)
    _check(store, presenter, 0)
    # not vacuous: movies came from what was kept and were read again after writes
    assert presenter.stats.cached > 0 and presenter.stats.read > 0


class RevisionlessStore(LocalGraphStore):
    """A store that cannot tell its revision (as the ArangoDB store)."""

    def revision(self) -> object | None:
        return None


def test_without_a_revision_every_slate_is_read_afresh() -> None:
    store = RevisionlessStore()
    store.upsert(make_tiny_batch())
    presenter = Presenter(store)
    _check(store, presenter, 1)
    assert presenter.stats.cached == presenter.stats.read == 0
