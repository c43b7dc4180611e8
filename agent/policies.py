"""SlatePolicy: the one interface shared by the DDPG agent and every baseline.

A policy sees what a recommender would see at one step (the state vector and a SlateContext:
candidates, slate size, the user's history, item embeddings) and returns a slate of movie rows.
The agent does it by acting in embedding space and ranking with features.ranking.rank; a
baseline ranks the candidates its own way. Evaluation drives every policy through the same
simulator steps (env.step_slate), so their numbers compare like for like.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from features.context import Rows, SlateContext
from features.ranking import rank

__all__ = ["AgentPolicy", "Rows", "SlateContext", "SlatePolicy"]


class SlatePolicy(Protocol):
    """Anything that turns (state, context) into a slate of movie rows, best first."""

    name: str

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows: ...


class AgentPolicy:
    """A trained SB3 actor: action = actor(state); slate = rank(action, candidates)."""

    def __init__(self, model: Any, name: str = "ddpg", deterministic: bool = True) -> None:
        self.model = model
        self.name = name
        self.deterministic = deterministic

    def action(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        act, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(act, dtype=np.float32)

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        action = self.action(obs)
        return rank(
            action,
            ctx.candidates,
            ctx.embeddings,
            ctx.k,
            base=ctx.base,
            extras=ctx.extras,
            residual=ctx.residual,
        ).indices
