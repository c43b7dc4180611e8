"""Simulated people for the closed loop: the simulator's hidden users facing the live service.

Each person is a world user with the simulator's own parts (env.user_model.SimulatedUser: true
ratings from the world model, consumption propensity, boredom that grows and recovers; the
world's calibrated choice model; env.reward's noisy half-star rating and reward). They answer
slates the *service* ranked (movie keys), so the response runs outside MovieRecEnv, whose
step needs its own candidates; the arithmetic is the environment's (choose, rate, observe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from env.reward import RatingReward, draw_rating
from env.user_model import SimulatedUser, UserModelConfig
from env.world import SimulationWorld
from features.state import UserHistory


@dataclass(frozen=True)
class Response:
    """What a person did with one slate: the chosen movie key (None: nothing), its rating,
    and the simulator's reward."""

    movie: str | None
    rating: float | None
    reward: float


class People:
    """The simulated population (one SimulatedUser per world user, kept across visits), with
    the world's own user settings (``SimulationWorld.user_config``: boredom's rating cost as
    fitted) unless ``config`` says otherwise: the people the champion was trained among."""

    def __init__(
        self, world: SimulationWorld, users: list[str], config: UserModelConfig | None = None
    ) -> None:
        self.world = world
        self.config = config if config is not None else world.user_config()
        self.choice = world.choice_model()
        self.reward_fn = RatingReward()
        self.rows = {str(k): i for i, k in enumerate(world.catalog.movie_keys)}
        self.keys = world.catalog.movie_keys
        self.users = list(users)
        self._people: dict[str, SimulatedUser] = {}

    def person(self, key: str) -> SimulatedUser:
        """The user's simulated self, made on first visit from their real ratings."""
        found = self._people.get(key)
        if found is not None:
            return found
        world = self.world
        movies, ratings = world.user_ratings(key)
        history = UserHistory.from_ratings(world.catalog.n_movies, movies, ratings)
        consumption = world.consumption
        person = SimulatedUser(
            key=key,
            predicted=world.model.predict_user(world.model.user_index(key)),
            genres=world.genre_matrix,
            history=history,
            config=self.config,
            genre_share=world.genre_share,
            propensity=(
                None
                if consumption is None
                else consumption.predict_user(consumption.user_index(key))
            ),
        )
        self._people[key] = person
        return person

    def respond(self, key: str, slate: list[str], rng: np.random.Generator) -> Response:
        """Choose at most one movie of ``slate`` (movie keys, best first), rate it, grow bored:
        env.MovieRecEnv._respond's steps on the service's slate."""
        person = self.person(key)
        rows = np.array([self.rows[m] for m in slate if m in self.rows], dtype=np.int64)
        if rows.shape[0] == 0:
            return Response(None, None, float(self.reward_fn(None)))
        pos = self.choice.choose(
            person.utility(rows), rng, person.propensity_of(rows), person.boredom_of(rows)
        )
        if pos is None:
            person.observe(rows, None)
            return Response(None, None, float(self.reward_fn(None)))
        chosen = int(rows[pos])
        rating = draw_rating(
            float(person.utility(rows[pos : pos + 1])[0]), self.config.rating_noise, rng
        )
        person.history.add(chosen, rating)
        person.observe(rows, chosen)
        return Response(str(self.keys[chosen]), rating, float(self.reward_fn(rating)))
