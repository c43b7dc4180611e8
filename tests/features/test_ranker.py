"""The Ranker's per-entry actions (features.ranker): a user's repeat requests reuse the actor's
output for their cached state, and rank exactly as a fresh forward pass would, across graph
writes that change (or leave) the state and across two actors on one entry."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt

from features.graph.schema import EdgeKind
from features.ranker import Ranker
from features.ranking import rank
from tests.features.conftest import MOVIES
from tests.features.test_precompute import USERS, _bundle, _store, _write


class CountingActor:
    """A deterministic actor (a fixed linear map and tanh) that counts its forward passes."""

    def __init__(self, size: int, action: int, seed: int) -> None:
        self.weights = np.random.default_rng(seed).normal(size=(size, action)).astype(np.float32)
        self.calls = 0

    def __call__(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.tanh(state @ self.weights).astype(np.float32)


def test_repeat_requests_reuse_the_action_and_rank_as_a_fresh_forward_pass() -> None:
    store = _store()
    bundle = _bundle(store)
    ranker = Ranker(bundle)
    actors = [CountingActor(ranker.observation_size, ranker.action_size, s) for s in (1, 2)]
    rng = random.Random(0)
    movies = [m[0] for m in MOVIES]
    kinds = [EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED]
    requests = 0
    for t in range(60):
        if t % 3 == 0:  # now and then a write: some users' states change, the revision always
            _write(store, rng.choice(USERS), rng.choice(movies), rng.choice(kinds), 2000 + t)
        for user in USERS:
            for actor in actors:
                seed = rng.randrange(2**32)
                got = ranker.rank(store, user, actor, 3, 0.5, np.random.default_rng(seed))
                fresh = Ranker(bundle).prepare(store, user)  # the store as it is now
                if fresh is None:
                    assert got is None
                    continue
                requests += 1
                expected_action = np.tanh(fresh.state @ actor.weights).astype(np.float32)
                assert got is not None
                np.testing.assert_array_equal(got.action, expected_action)
                np.testing.assert_array_equal(got.state, fresh.state)
                slate = rank(
                    expected_action,
                    fresh.candidates,
                    ranker.vectors,
                    3,
                    0.5 * (bundle.base_weight if fresh.base is not None else 1.0),
                    np.random.default_rng(seed),
                    fresh.base,
                    fresh.extras,
                    fresh.residual,
                )
                assert got.slate is not None
                np.testing.assert_array_equal(got.slate.indices, slate.indices)
                np.testing.assert_array_equal(got.slate.scores, slate.scores)
                np.testing.assert_array_equal(got.slate.propensities, slate.propensities)
    # the memo is not vacuous: far fewer forward passes than requests, one per computed state
    # and actor at most (a state kept after a write keeps its actions)
    calls = sum(a.calls for a in actors)
    assert calls <= 2 * ranker.stats.computed < requests


def test_a_shared_action_cannot_be_changed_by_a_caller() -> None:
    store = _store()
    ranker = Ranker(_bundle(store))
    actor = CountingActor(ranker.observation_size, ranker.action_size, 3)
    first = ranker.rank(store, "ann", actor, 2)
    again = ranker.rank(store, "ann", actor, 2)
    assert first is not None and again is not None and actor.calls == 1
    assert again.action is first.action and not first.action.flags.writeable
