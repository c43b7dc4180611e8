"""SlateContext: what a slate policy may see at one step, shared by the simulator and service.

Baselines and the agent (agent.policies) rank from it; the simulator builds it each step
(MovieRecEnv.slate_context), and so can the service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.catalog import Catalog
from features.retrieval import Retriever
from features.state import UserHistory

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SlateContext:
    """What a policy may use at one step. ``true_utility`` is the simulator's ground truth:
    only the oracle baseline reads it. ``base`` is the ranking's base score per candidate
    (``features.candidates.base_scores``), ``retrievers`` the named scorers baselines rank by
    (fitted on training users only); ``extras`` the candidates' slate features, which the
    agent's action weighs after the embedding."""

    candidates: Rows
    k: int
    history: UserHistory
    catalog: Catalog
    embeddings: npt.NDArray[np.float32]
    rng: np.random.Generator
    true_utility: Callable[[Rows], npt.NDArray[np.float64]] | None = None
    base: npt.NDArray[np.float64] | None = None
    # the candidates' slate features (features.slate_features), None without
    extras: npt.NDArray[np.float64] | None = None
    # the share of the action's correction this user gets (features.ranking.residual_weight)
    residual: float = 1.0
    retrievers: Mapping[str, Retriever] = field(default_factory=dict)
