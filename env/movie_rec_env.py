"""MovieRecEnv: a Gymnasium user simulator calibrated on real ratings (RecSim-style parts)."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from env.choice import ChoiceModel
from env.reward import RatingReward, draw_rating
from env.user_model import SimulatedUser, UserModelConfig
from env.world import SPLITS, SimulationWorld, default_world
from features.candidates import DEFAULT_CANDIDATE_HOPS, CandidateGenerator, base_scores
from features.context import SlateContext
from features.ranking import rank, residual_weight
from features.state import StateBuilder, UserHistory

log = logging.getLogger(__name__)

RESET_OPTIONS = ("user",)


class MovieRecEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """A real user's taste (from a world model fitted on their ratings) meets the agent's slates.

    Each episode samples a user of the chosen split, seeds their history with their earliest
    ``history_size`` real ratings, then at every step ranks candidates by the action, lets the
    user pick at most one slate movie, rate it and grow bored of what they see.

    ## Action Space
    ``Box(-1, 1, (d + m,), float32)``: a direction in item-embedding space (d = the world's
    embedding dim, 16 by default) followed by one weight per slate feature (m = 2 in new
    worlds: quality and variety, ``features.slate_features``; 0 in worlds saved before them).
    Candidates (the world's retriever's top ``n_retrieved``, graph traversal from the user's
    positives, popular fallbacks, minus seen) are scored ``base_i + e_i . a_e + f_i . a_f`` by
    ``features.ranking.rank``, base being the retriever's score standardised over the
    candidates (so a zero action serves the retriever's ranking); the top ``slate_size`` form
    the slate (a Plackett-Luce sample if ``ranking_temperature`` > 0). Worlds without a
    retriever score the rest alone.

    ## Observation Space
    ``Box(-1, 1, (n,), float32)`` from ``features.state.StateBuilder``: user vector, pooled
    recent positives, their product, pooled 2-3-hop graph neighbourhood (4 x d), genre
    affinities (one per genre) and two history statistics. ``env.state_builder.layout`` names
    the slices.

    ## Rewards
    (rating - 3) / 2 for the chosen movie's rating (half stars 0.5..5, drawn around the true
    utility with noise), ``no_choice_penalty`` (-0.1) when the user picks nothing.

    ## Episode End
    Terminated when the user leaves (``env.user_model``); truncated by the registered
    ``max_episode_steps`` (50) when made through ``gymnasium.make``. With ``users_leave=False``
    the user never leaves (an evaluator's choice, never training's): ``leave_probability`` in
    the info still says how likely leaving was, so a return can be weighted by the chance the
    user is still there (``agent.evaluation.simulated``).

    ## Info
    ``user``, ``slate`` (movie rows), ``slate_keys``, ``propensities``, ``chosen`` (row, -1 if
    none), ``chosen_key``, ``rating`` (NaN if none), ``utility`` (true utility of the chosen
    movie, NaN if none), ``slate_best_utility``, ``oracle_utility`` (the best true utility among
    the candidates: what a myopic oracle ranking them would offer), ``regret``
    (oracle_utility - slate_best_utility) and ``leave_probability`` (the chance the user left
    after this step).

    ## Arguments
    - ``world``: a SimulationWorld, a folder holding a saved one, or None for the world built
      from the bundled ml-latest-small (built once per process, a few seconds).
    - ``split``: "train", "test" or "all": which users episodes sample.
    - ``slate_size`` (10), ``max_candidates`` (200), ``history_size`` (10 earliest ratings).
    - ``candidate_hops`` (2): traversal depth for graph candidates. Deeper reaches more but is
      dominated by hub movies (on ml-latest-small two users' top-150 graph candidates overlap
      by Jaccard ~0.1 at 1 hop, ~0.33 at 2, ~0.6 at 3); features.candidates says why 2.
    - ``n_retrieved`` (100): how many of the retriever's best movies join the candidates.
    - ``ranking_temperature`` (0.0: deterministic top-k).
    - ``users_leave`` (True): False keeps every user to the end (see Episode End).
    - ``user_config``, ``choice``, ``reward``: the swappable parts (their modules document
      their defaults). ``choice`` defaults to the world's (``SimulationWorld.choice_model``:
      calibrated on real next interactions when the world has a consumption model);
      ``user_config`` to the world's (``SimulationWorld.user_config``: boredom's rating cost
      as fitted on real ratings).

    Reset options: ``{"user": key}`` runs that user (any user of the world); unknown keys or
    users raise ValueError. All randomness comes from ``self.np_random``.
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        world: SimulationWorld | str | None = None,
        *,
        split: str = "train",
        slate_size: int = 10,
        max_candidates: int = 200,
        candidate_hops: int = DEFAULT_CANDIDATE_HOPS,
        history_size: int = 10,
        n_retrieved: int = 100,
        ranking_temperature: float = 0.0,
        users_leave: bool = True,
        user_config: UserModelConfig | None = None,
        choice: ChoiceModel | None = None,
        reward: RatingReward | None = None,
        render_mode: str | None = None,
    ):
        if world is None:
            world = default_world()
        elif not isinstance(world, SimulationWorld):
            world = SimulationWorld.load(world)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if slate_size <= 0:
            raise ValueError(f"slate_size must be positive, got {slate_size}")
        if max_candidates < slate_size:
            raise ValueError(
                f"max_candidates ({max_candidates}) must be at least slate_size ({slate_size})"
            )
        if max_candidates > world.catalog.n_movies:
            raise ValueError(
                f"max_candidates ({max_candidates}) exceeds the catalog's "
                f"{world.catalog.n_movies} movies"
            )
        if history_size < 0:
            raise ValueError(f"history_size must be >= 0, got {history_size}")
        if ranking_temperature < 0:
            raise ValueError(f"ranking_temperature must be >= 0, got {ranking_temperature}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}; use 'ansi' or None")
        self.world = world
        self.users = world.users(split)
        if self.users.shape[0] == 0:
            raise ValueError(f"the world has no users in split {split!r}")
        self.split = split
        self.slate_size = slate_size
        self.history_size = history_size
        self.ranking_temperature = ranking_temperature
        self.users_leave = users_leave
        self.user_config = user_config or world.user_config()
        self.choice = choice or world.choice_model()
        self.reward_fn = reward or RatingReward()
        self.render_mode = render_mode
        self.state_builder = StateBuilder(
            world.catalog, world.embeddings, pool_hops=world.pool_hops
        )
        self.retriever = world.retriever
        self.candidates = CandidateGenerator(
            world.catalog,
            max_candidates=max_candidates,
            hops=candidate_hops,
            retriever=self.retriever,
            n_retrieved=n_retrieved,
        )
        self._emb = world.embeddings.vectors
        self.slate_features = world.slate_features
        self.action_space = spaces.Box(-1.0, 1.0, shape=(world.action_dim,), dtype=np.float32)
        self.observation_space = spaces.Box(
            -1.0, 1.0, shape=(self.state_builder.observation_size,), dtype=np.float32
        )
        self._user: SimulatedUser | None = None
        self._cands: npt.NDArray[np.int64] | None = None
        self._last_info: dict[str, Any] = {}

    # ---- episode -----------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown reset options {unknown}; accepted: {', '.join(RESET_OPTIONS)}"
            )
        if options.get("user") is not None:
            key = str(options["user"])
            if not self.world.has_user(key):
                raise ValueError(f"unknown user {key!r}: no ratings for that user in this world")
        else:
            key = str(self.users[int(self.np_random.integers(self.users.shape[0]))])
        movies, ratings = self.world.user_ratings(key)
        n = min(self.history_size, movies.shape[0])
        history = UserHistory.from_ratings(self.world.catalog.n_movies, movies[:n], ratings[:n])
        row = self.world.model.user_index(key)
        consumption = self.world.consumption
        self._cands = None
        self._user = SimulatedUser(
            key=key,
            predicted=self.world.model.predict_user(row),
            genres=self.world.genre_matrix,
            history=history,
            config=self.user_config,
            genre_share=self.world.genre_share,
            propensity=(
                None
                if consumption is None
                else consumption.predict_user(consumption.user_index(key))
            ),
        )
        self._last_info = {"user": key, "history_size": n}
        return self.state_builder.build(history), dict(self._last_info)

    def step(
        self, action: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        user = self._user
        if user is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"action has shape {a.shape} but the action space has shape "
                f"{self.action_space.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or infinite values")
        a = np.clip(a, -1.0, 1.0)
        cands = self._current_candidates(user)
        base = base_scores(self.retriever, user.history, cands, self.world.base_weight)
        slate = rank(
            a,
            cands,
            self._emb,
            self.slate_size,
            self.ranking_temperature,
            self.np_random,
            base,
            self._extras(user, cands),
            self._residual(user),
        )
        return self._respond(user, cands, slate.indices, slate.propensities)

    def slate_context(self, rng: np.random.Generator) -> SlateContext:
        """What a slate policy may see now (features.context.SlateContext): candidates, slate
        size, history, embeddings, and the true utility (read only by the oracle baseline)."""
        user = self._require_user()
        cands = self._current_candidates(user)
        return SlateContext(
            candidates=cands,
            k=self.slate_size,
            history=user.history,
            catalog=self.world.catalog,
            embeddings=self._emb,
            rng=rng,
            true_utility=user.utility,
            base=base_scores(self.retriever, user.history, cands, self.world.base_weight),
            retrievers=self.world.retrievers,
            extras=self._extras(user, cands),
            residual=self._residual(user),
        )

    def _residual(self, user: SimulatedUser) -> float:
        """The share of the action's correction this user's history length gets."""
        return residual_weight(len(user.history.items), self.world.residual_ramp)

    def _extras(
        self, user: SimulatedUser, cands: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64] | None:
        """The candidates' slate features for the user's history now, None in worlds without."""
        if self.slate_features is None:
            return None
        return self.slate_features.compute(user.history, cands)

    def step_slate(
        self, slate: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Step with a slate chosen outside the action-to-ranking path (baselines, logged
        policies): movie rows, best first, drawn from the current candidates."""
        user = self._require_user()
        rows = np.asarray(slate, dtype=np.int64).reshape(-1)
        cands = self._current_candidates(user)
        if rows.shape[0] == 0 or rows.shape[0] > self.slate_size:
            raise ValueError(f"a slate holds 1 to {self.slate_size} movies, got {rows.shape[0]}")
        if np.unique(rows).shape[0] != rows.shape[0]:
            raise ValueError("the slate repeats a movie")
        if not np.isin(rows, cands).all():
            raise ValueError("the slate holds movies that are not among the current candidates")
        return self._respond(user, cands, rows, np.ones(rows.shape[0]))

    def _require_user(self) -> SimulatedUser:
        if self._user is None:
            raise RuntimeError("call reset() before step()")
        return self._user

    def _current_candidates(self, user: SimulatedUser) -> npt.NDArray[np.int64]:
        """Candidates for the user's current history, computed once per step."""
        if self._cands is None:
            self._cands = self.candidates.generate(user.history)
        return self._cands

    def _respond(
        self,
        user: SimulatedUser,
        cands: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        propensities: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """The user's response to a slate: choice, rating, boredom, leaving."""
        self._cands = None
        rng = self.np_random
        cand_utility = user.utility(cands)
        slate_utility = user.utility(rows)
        pos = self.choice.choose(
            slate_utility, rng, user.propensity_of(rows), user.boredom_of(rows)
        )
        if pos is None:
            chosen, rating, utility = -1, None, float("nan")
        else:
            chosen = int(rows[pos])
            utility = float(slate_utility[pos])
            rating = draw_rating(utility, self.user_config.rating_noise, rng)
            user.history.add(chosen, rating)
        reward = self.reward_fn(rating)
        user.observe(rows, None if chosen < 0 else chosen)
        leave = user.leave_probability(chosen >= 0)
        terminated = self.users_leave and bool(rng.random() < leave)
        keys = self.world.catalog.movie_keys
        oracle = float(cand_utility.max())
        best = float(slate_utility.max())
        info: dict[str, Any] = {
            "user": user.key,
            "slate": rows,
            "slate_keys": [str(k) for k in keys[rows]],
            "propensities": propensities,
            "chosen": chosen,
            "chosen_key": str(keys[chosen]) if chosen >= 0 else "",
            "rating": float("nan") if rating is None else rating,
            "utility": utility,
            "slate_best_utility": best,
            "oracle_utility": oracle,
            "regret": oracle - best,
            "leave_probability": leave,
        }
        self._last_info = info
        return self.state_builder.build(user.history), float(reward), terminated, False, info

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi" or self._user is None:
            return None
        info = self._last_info
        titles = self.world.catalog.titles
        lines = [f"user {self._user.key}"]
        for row in info.get("slate", []):
            mark = "*" if row == info.get("chosen") else " "
            lines.append(f" {mark} {titles[row]}")
        if "rating" in info:
            lines.append(f"rating {info['rating']}")
        return "\n".join(lines)
