"""Who visits in each round of the closed loop: a fixed cohort, or people who come and go.

A fixed cohort (``active`` 0) is every world user, drawn uniformly with replacement each
round: the same people come back again and again, so the population ages over the run (by
50,000 slates from 3,000 people, each has made ~17 visits and used up their best films), and
a return that falls from the first to the last fifth may be the cohort's age, not the policy.

A pool (``active`` > 0): ``active`` people at a time, drawn uniformly with replacement each
round; after each visit a person leaves with probability ``1 / mean_visits`` (so their number
of visits is geometric with that mean) and the next newcomer, in a seeded order of the world's
users, takes their place. After a start-up of about ``mean_visits * active`` visits the mix of
first and repeat visits is steady, as in a service whose people arrive and churn, and the
served return over time follows what is served. Needs about ``active + visits / mean_visits``
world users; running out is an error that says so.
"""

from __future__ import annotations

import numpy as np


class Arrivals:
    """Draws each round's visitors (module doc)."""

    def __init__(
        self,
        population: list[str],
        rng: np.random.Generator,
        *,
        active: int = 0,
        mean_visits: float = 0.0,
        seed: int = 0,
    ) -> None:
        if active < 0:
            raise ValueError(f"active must be >= 0, not {active}")
        if active and mean_visits < 1.0:
            raise ValueError(f"mean_visits must be >= 1 with a pool, not {mean_visits}")
        if active > len(population):
            raise ValueError(f"a pool of {active} needs as many world users ({len(population)})")
        self.population = population
        self.rng = rng  # the fixed cohort draws from the loop's own generator, as it always did
        self.active = active
        self.mean_visits = mean_visits
        self.visits = 0
        if active:
            own = np.random.default_rng([seed, 0xA221])  # the pool's churn: its own stream
            order = [population[i] for i in own.permutation(len(population))]
            self._own = own
            self.pool = order[:active]
            self._newcomers = order[active:]
            self._next = 0

    def draw(self, n: int) -> list[str]:
        """The next round's ``n`` visitors (repeats allowed: a person may visit twice)."""
        self.visits += n
        if not self.active:
            return [str(u) for u in self.rng.choice(self.population, size=n)]
        out: list[str] = []
        slots = self._own.integers(0, self.active, size=n)
        leaves = self._own.random(n) < 1.0 / self.mean_visits
        for slot, leave in zip(slots, leaves, strict=True):
            out.append(self.pool[slot])
            if leave:
                if self._next >= len(self._newcomers):
                    raise SystemExit(
                        f"the world's {len(self.population)} users ran out after "
                        f"{self.visits} visits (a pool of {self.active}, "
                        f"{self.mean_visits:g} visits each on average): raise --users to "
                        f"about {self.active + round(1.2 * self.visits / self.mean_visits)} "
                        "or --mean-visits"
                    )
                self.pool[slot] = self._newcomers[self._next]
                self._next += 1
        return out
