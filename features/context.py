"""SlateContext: what a slate policy may see at one step, shared by the simulator and service.

Baselines and the agent (agent.policies) rank from it; the simulator builds it each step
(MovieRecEnv.slate_context), and so can the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.catalog import Catalog
from features.state import UserHistory

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SlateContext:
    """What a policy may use at one step. ``true_utility`` is the simulator's ground truth:
    only the oracle baseline reads it."""

    candidates: Rows
    k: int
    history: UserHistory
    catalog: Catalog
    embeddings: npt.NDArray[np.float32]
    rng: np.random.Generator
    true_utility: Callable[[Rows], npt.NDArray[np.float64]] | None = None
