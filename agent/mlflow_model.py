"""The MLflow pyfunc wrapper of a saved SB3 policy (logged as models-from-code).

``predict`` maps a batch of states to actions, so a registered version can be served or
inspected with MLflow's own tools; Marquee's own code loads the SB3 zip directly.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel, PythonModelContext


class SB3PolicyModel(PythonModel):
    """Loads the ``policy`` artifact (an SB3 zip) and acts deterministically."""

    def load_context(self, context: PythonModelContext) -> None:
        from stable_baselines3 import DDPG, TD3

        path = context.artifacts["policy"]
        algo = (context.model_config or {}).get("algo", "ddpg")
        self.model = (TD3 if algo == "td3" else DDPG).load(path, device="cpu")

    def predict(
        self,
        context: PythonModelContext,
        model_input: list[Any],
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        obs = np.asarray(model_input, dtype=np.float32)
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action)


mlflow.models.set_model(SB3PolicyModel())
