"""The closed loop's simulated people (experiments.online_loop.people)."""

from __future__ import annotations

from env.user_model import UserModelConfig
from env.world import SimulationWorld
from experiments.online_loop.people import People


def test_people_are_the_worlds_users_unless_told_otherwise(ml_world: SimulationWorld) -> None:
    # The champion trains among the world's users (MovieRecEnv takes world.user_config()); the
    # loop's people must be the same, not UserModelConfig's priors, whose boredom costs 2
    # rating points and made every arm's return fall over repeat visits.
    people = People(ml_world, [])
    assert people.config == ml_world.user_config()
    assert people.config.boredom_weight == ml_world.settings["user"]["boredom_weight"]
    assert people.config.boredom_weight != UserModelConfig().boredom_weight
    given = UserModelConfig(boredom_weight=1.0)
    assert People(ml_world, [], given).config is given


def test_a_person_made_on_first_visit_carries_the_settings(ml_world: SimulationWorld) -> None:
    user = str(ml_world.users("test")[0])
    person = People(ml_world, [user]).person(user)
    assert person.config == ml_world.user_config()
