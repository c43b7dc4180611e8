"""The trained actor as a plain function state -> action, for ranking outside SB3's loop.

``model.predict`` does bookkeeping a single served request does not need (observation
checks, vectorised-env reshaping); the service calls the SB3 model's actor network directly,
under torch's inference mode. The action is the deterministic tanh output, as ``predict``
with ``deterministic=True`` gives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Actor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def actor_fn(model: Any) -> Actor:
    """A function state -> action using ``model.actor`` (an SB3 DDPG/TD3 model)."""
    import torch as th

    actor = model.actor
    actor.eval()

    def act(state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with th.inference_mode():
            out = actor(th.from_numpy(state.reshape(1, -1)))
        return np.asarray(out.numpy()[0], dtype=np.float32)

    return act
