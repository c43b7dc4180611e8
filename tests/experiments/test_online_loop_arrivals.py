"""Who visits the closed loop: the fixed cohort as it always was, and the churning pool."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from experiments.online_loop.arrivals import Arrivals
from experiments.online_loop.loop import LoopArgs, _arrivals

POPULATION = [f"u{i}" for i in range(5000)]


def test_the_fixed_cohort_draws_what_the_loop_always_drew() -> None:
    """Same generator, same call: runs without a pool replay their earlier seeds exactly."""
    got = Arrivals(POPULATION, np.random.default_rng(7)).draw(100)
    want = np.random.default_rng(7).choice(POPULATION, size=100)
    assert got == [str(u) for u in want]


def test_a_pool_holds_its_size_and_people_make_about_mean_visits_each() -> None:
    arrivals = Arrivals(POPULATION, np.random.default_rng(0), active=200, mean_visits=4.0, seed=3)
    visits: collections.Counter[str] = collections.Counter()
    for _ in range(100):
        visits.update(arrivals.draw(100))
        assert len(arrivals.pool) == 200
    # people who left: their visits are geometric with mean 4 (those still in the pool are cut)
    left = [n for u, n in visits.items() if u not in set(arrivals.pool)]
    assert 3.6 < np.mean(left) < 4.4
    assert len(visits) > 2000  # ~10,000 visits / 4 newcomers, not the first 200 again and again


def test_the_pool_is_seeded_by_its_own_stream() -> None:
    def run(seed: int) -> list[str]:
        a = Arrivals(POPULATION, np.random.default_rng(1), active=50, mean_visits=3.0, seed=seed)
        return [u for _ in range(20) for u in a.draw(30)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_running_out_of_newcomers_says_how_many_users_are_needed() -> None:
    arrivals = Arrivals(POPULATION[:60], np.random.default_rng(0), active=50, mean_visits=1.0)
    with pytest.raises(SystemExit, match=r"users ran out after .* raise --users"):
        for _ in range(10):
            arrivals.draw(5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"active": -1}, "active must be >= 0"),
        ({"active": 10, "mean_visits": 0.5}, "mean_visits must be >= 1"),
        ({"active": 6000, "mean_visits": 2.0}, "needs as many world users"),
    ],
)
def test_bad_pool_settings_are_refused(kwargs: dict[str, float], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Arrivals(POPULATION, np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def test_the_loop_refuses_a_pool_the_world_cannot_fill_before_serving() -> None:
    args = LoopArgs(interactions=50_000, active_people=500, mean_visits=5.0)
    with pytest.raises(SystemExit, match=r"needs about 10900 world users .* has 5000"):
        _arrivals(args, POPULATION, np.random.default_rng(0))
    args = LoopArgs(interactions=50_000, active_people=500, mean_visits=0.0)
    with pytest.raises(SystemExit, match="--mean-visits must be >= 1"):
        _arrivals(args, POPULATION, np.random.default_rng(0))
